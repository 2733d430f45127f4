"""Command groups of the knowdo CLI, each exposing ``register(app)``."""

"""The workspace's routes: sign-in and account pages, project pages, and the JSON API under ``/api/``."""

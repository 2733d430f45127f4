"""The shared web workspace: accounts, roles, projects and the evidence dashboard.

Renders what the core computed (it computes no statistics); started by ``knowdo serve``.
"""

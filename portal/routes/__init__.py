"""HTTP routes, one module per area of the API; each view parses, calls generate.py, shapes the reply."""

from __future__ import annotations

from flask import current_app

from generate import Services


def services() -> Services:
    """The process's services, created by the app factory."""
    return current_app.extensions["portal"]

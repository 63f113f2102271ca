"""Shared fixtures: settings pointed at temporary folders, a fitted tiny model, the app and client."""

pytest_plugins = ("tests.llm_server",)

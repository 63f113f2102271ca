"""Small helpers shared by several test modules."""

from __future__ import annotations

import time

import pytest


def wait_for(condition, timeout_s: float, every_s: float = 0.1):
    """The first truthy value of ``condition()``; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    pytest.fail(f"condition not met within {timeout_s} s")

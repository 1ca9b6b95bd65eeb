"""Helpers for the distribution tests (imported by name, like tests/edge/edgetest.py)."""

from __future__ import annotations

import asyncio
import time

TOKEN = "s3cret-token"


async def until(predicate, timeout: float = 60.0, interval: float = 0.05) -> None:
    """Wait until `predicate()` is true (fails the test after `timeout` seconds, which
    only bounds a hang: a loaded machine is slow, not wrong)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)

"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Future]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again any that run
    on. Python 3.11's `asyncio.wait_for` (which redis-py and dnspython use for their
    timeouts) swallows a cancel that comes as its awaitable finishes (CPython gh-86296):
    a loop that catches the library's errors then carries on, and one `cancel()` would
    leave a stop waiting for it forever."""
    tasks = list(tasks)
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in tasks:  # retrieved, as stopping means: no "never retrieved" warning
        if not task.cancelled():
            task.exception()

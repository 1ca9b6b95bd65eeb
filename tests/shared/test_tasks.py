"""Stopping background tasks: a task that swallows a cancel (as Python 3.11's
asyncio.wait_for can, CPython gh-86296) is cancelled again until it ends."""

from __future__ import annotations

import asyncio

from geocdn.tasks import cancel_and_wait


async def test_a_loop_that_swallowed_a_cancel_is_stopped_anyway():
    rounds = []

    async def loop_that_swallows_one_cancel() -> None:
        swallowed = False
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True  # what a library's wait_for did: the loop carries on
            rounds.append(1)

    async def failing() -> None:
        raise ValueError("ended with an error before the stop")

    swallower = asyncio.create_task(loop_that_swallows_one_cancel())
    broken = asyncio.create_task(failing())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(cancel_and_wait([swallower, broken]), 60)
    assert swallower.cancelled() and broken.done() and rounds

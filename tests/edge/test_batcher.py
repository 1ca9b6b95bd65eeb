"""Where the batcher runs a model: small batches of a cheap model on the event loop's
thread (a worker thread costs more than the run), a large request after them in a worker
thread, so one big tensor never stalls every other connection."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edge.batcher import MicroBatcher


async def test_a_large_request_after_small_ones_runs_off_the_event_loop() -> None:
    ran_on: list[tuple[int, int]] = []  # (rows, thread)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds["x"]
        ran_on.append((x.shape[0], threading.get_ident()))
        return [x * 2.0]

    loop_thread = threading.get_ident()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = MicroBatcher(run, max_batch=64, max_delay_s=0.002, executor=executor)
        for i in range(200):  # one client, one row at a time
            (out,) = await batcher.infer({"x": np.full((1, 4), float(i), np.float32)})
            assert out.tolist() == [[2.0 * i] * 4]
        big = np.arange(40_000, dtype=np.float32).reshape(10_000, 4)
        (out,) = await batcher.infer({"x": big})
        assert np.array_equal(out, big * 2.0)

    small = [thread for rows, thread in ran_on if rows == 1]
    assert ran_on[0][1] != loop_thread  # not timed yet: a worker thread
    assert loop_thread in small  # a cheap model's single rows came to run on the loop
    assert ran_on[-1] == (10_000, ran_on[0][1])  # the large one went to the worker thread

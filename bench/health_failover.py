"""Failover and recovery times of `geodns serve` with its health checker, through DNS.

Starts small real HTTP members on loopback addresses (london, frankfurt, paris that
loses one probe in three, tokyo), `geodns serve` with the default health settings,
then RUNS times for each way of dying - "refused" (the server is gone: connections
are refused) and "hung" (it accepts but never answers: probes time out) - takes
london down and times until the London client's answer (ECS) no longer names it,
then brings it back and times until it does again. Prints every run, the medians,
the bounds the settings promise, and the documented defaults of gdnsd and Route 53.

    .venv/bin/python bench/health_failover.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "health"))

from health_members import MemberServer, loopback_address  # noqa: E402
from health_stack import GeoDNS, ask, until, write_zone  # noqa: E402

from geodns.steering.health_settings import DEFAULTS as D  # noqa: E402

OTHERS = [
    # (system, failover, recovery, how) - their documented default settings
    ("gdnsd 3 (http_status defaults)", "~100 s", "~200 s",
     "interval 10 s x down_thresh 10; up_thresh 20 x 10 s"),
    ("Route 53 (fast checks)", "~30 s", "~30 s",
     "request interval 10 s x failure threshold 3 (default 30 s x 3 = ~90 s)"),
]


async def measure(runs: int) -> None:
    servers = {
        "london": MemberServer(loopback_address(90)),
        "frankfurt": MemberServer(loopback_address(90)),
        "paris": MemberServer(loopback_address(90), flap=True),
        "tokyo": MemberServer(loopback_address(90)),
    }
    for s in servers.values():
        await s.start()
    with tempfile.TemporaryDirectory(prefix="health-bench-") as tmp:
        write_zone(Path(tmp), servers)
        server = GeoDNS(Path(tmp), log=Path(tmp) / "geodns.log").start()
        ip = {name: s.host for name, s in servers.items()}
        flaps: list[tuple[str, ...]] = []

        stop_watching = asyncio.Event()  # the watcher ends by itself (not cancelled: Python
        # 3.11's wait_for, in dnspython's timeout, can swallow a cancel, CPython gh-86296)

        async def watch_paris() -> None:
            while not stop_watching.is_set():
                flaps.append((await ask(server.port, "paris")).addresses)
                await asyncio.sleep(0.05)

        times: dict[str, tuple[list[float], list[float]]] = {"refused": ([], []),
                                                              "hung": ([], [])}
        london = servers["london"]
        watcher: asyncio.Task | None = None
        try:
            await until(server.port, "london", lambda r: r.addresses == (ip["london"],), 30)
            watcher = asyncio.create_task(watch_paris())
            for i in range(runs):
                for kind, (downs, ups) in times.items():
                    if kind == "refused":
                        await london.stop()
                    else:
                        london.hang = 3600.0
                    down, _ = await until(server.port, "london",
                                          lambda r: r.rcode == "NOERROR"
                                          and r.addresses != (ip["london"],), 30, step=0.01)
                    if kind == "refused":
                        await london.start()
                    else:
                        london.hang = 0.0
                    up, _ = await until(server.port, "london",
                                        lambda r: r.addresses == (ip["london"],), 30, step=0.01)
                    downs.append(down)
                    ups.append(up)
                    print(f"run {i + 1} {kind:8}: left the answers after {down:5.2f} s, "
                          f"back after {up:5.2f} s", flush=True)
                    await asyncio.sleep(1.0)  # let the member settle before the next one
        finally:
            stop_watching.set()
            if watcher is not None:
                await watcher
            server.stop()
            for s in servers.values():
                await s.stop()

    bound_down = D.fall * D.interval * (1 + D.jitter) + D.timeout
    bound_up = D.rise * D.interval * (1 + D.jitter) + D.timeout
    wrong = sum(1 for a in flaps if a != (ip["paris"],))
    print()
    print(f"settings: interval {D.interval} s, timeout {D.timeout} s, jitter {D.jitter:.0%}, "
          f"fall {D.fall}, reset {D.reset}, rise {D.rise}")
    print(f"{'system':32} {'failover':>10} {'recovery':>10}  how")
    for kind, (downs, ups) in times.items():
        print(f"{'geodns + healthcheck, ' + kind:32} {statistics.median(downs):9.2f}s "
              f"{statistics.median(ups):9.2f}s  median of {runs}, min-max "
              f"{min(downs):.2f}-{max(downs):.2f} s / {min(ups):.2f}-{max(ups):.2f} s")
    print(f"{'geodns + healthcheck (bound)':32} {bound_down:9.2f}s {bound_up:9.2f}s  "
          f"worst case from the settings (docs/health.md)")
    for name, down, up, how in OTHERS:
        print(f"{name:32} {down:>10} {up:>10}  {how}")
    print(f"flapping member (fails 1 probe in 3): {len(flaps)} answers, {wrong} without it")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    asyncio.run(measure(p.parse_args().runs))


if __name__ == "__main__":
    main()

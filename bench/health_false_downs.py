"""False downs of the health checker on a busy machine, with the default settings.

Starts healthy HTTP members on loopback addresses (they always answer), `geodns serve`
with the default health settings on a zone holding them, and `stress-ng --cpu N` to
keep every core busy, then counts for MINUTES every member that the checker took DOWN
(each one is false: no member ever fails), every failed probe, and the probes' latency.

With `--reference PATH` a second `geodns` (e.g. an older checkout's
`.venv/bin/geodns`) probes the same members at the same time, on the same busy machine:
the reference figure measured in the same run.

    .venv/bin/python bench/health_false_downs.py --minutes 10 --stress 2 \\
        [--reference /path/to/old/.venv/bin/geodns]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "health"))

from health_members import MemberServer, loopback_address  # noqa: E402
from health_stack import GEODNS, GeoDNS  # noqa: E402

from cdn.processes import stop_process  # noqa: E402
from geodns.steering.health_settings import DEFAULTS as D  # noqa: E402

CITIES = {  # the seven edges of the example zone
    "tokyo": (35.68, 139.69), "london": (51.51, -0.13), "virginia": (38.95, -77.45),
    "mumbai": (19.08, 72.88), "saopaulo": (-23.55, -46.63), "sydney": (-33.87, 151.21),
    "frankfurt": (50.11, 8.68),
}


def write_zone(directory: Path, members: dict[str, MemberServer]) -> None:
    doc = {
        "zone": "busy.example",
        "soa": {"mname": "ns1", "rname": "hostmaster", "serial": 1},
        "records": {"@": {"NS": ["ns1"]}, "ns1": {"A": "127.0.0.1"}, "edge": {"pool": "edges"}},
        "pools": {"edges": {"ttl": 30, "members": [
            {"name": n, "ipv4": s.host, "lat": CITIES[n][0], "lon": CITIES[n][1],
             "health_url": s.url} for n, s in members.items()]}},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "busy.example.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def counters(http_port: int) -> dict[str, float]:
    """Probes ok / failed / inconclusive (the checker itself stalled), state changes to
    down, and probe latency quantiles (from the histogram's buckets: the smallest bucket
    bound holding 50 % / 99.9 % of probes)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {"ok": 0.0, "fail": 0.0, "inconclusive": 0.0, "down": 0.0}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "healthcheck_probe_results_total":
                out[s.labels["result"]] += s.value
            elif s.name == "healthcheck_state_changes_total" and s.labels["to"] == "down":
                out["down"] += s.value
            elif s.name == "healthcheck_probe_duration_seconds_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    total = max(buckets.values(), default=0.0)
    for q, name in ((0.5, "p50"), (0.999, "p99.9")):
        out[name] = min((le for le, n in buckets.items() if total and n >= q * total),
                        default=float("nan"))
    return out


async def read_all(procs: dict[str, GeoDNS]) -> dict[str, dict[str, float]]:
    """Every server's counters, read in a thread: the members answer probes from this
    process's event loop, which must never wait on a slow /metrics."""
    return {name: await asyncio.to_thread(counters, s.http_port) for name, s in procs.items()}


async def run(minutes: float, stress: int, reference: str | None) -> None:
    members = {n: MemberServer(loopback_address(95)) for n in CITIES}
    for m in members.values():
        await m.start()
    with tempfile.TemporaryDirectory(prefix="false-downs-") as tmp:
        write_zone(Path(tmp) / "zones", members)
        servers = {"this checker": GeoDNS(Path(tmp) / "zones", log=Path(tmp) / "a.log")}
        if reference:
            servers["reference"] = GeoDNS(Path(tmp) / "zones", log=Path(tmp) / "b.log")
        procs = {}
        for name, server in servers.items():
            if name == "reference":
                server.proc = subprocess.Popen(
                    [reference, "serve", "--zones", str(server.zones),
                     "--listen", f"127.0.0.1:{server.port}",
                     "--http", f"127.0.0.1:{server.http_port}"],
                    stdout=open(server.log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
            else:
                server.start()
            procs[name] = server
        hog = None
        try:
            for s in procs.values():  # each server answers (a busy machine starts slowly)
                deadline = time.monotonic() + 60
                while True:
                    try:
                        await asyncio.to_thread(counters, s.http_port)
                        break
                    except OSError:
                        assert time.monotonic() < deadline, f"{s.log} did not start"
                        await asyncio.sleep(0.5)
            await asyncio.sleep(5)  # settled: every member up
            start = await read_all(procs)
            if stress:
                hog = subprocess.Popen(["stress-ng", "--cpu", str(stress), "--timeout",
                                        f"{int(minutes * 60) + 30}s", "--quiet"])
            began = time.monotonic()
            while time.monotonic() - began < minutes * 60:
                await asyncio.sleep(30)
                now = await read_all(procs)
                print(f"{(time.monotonic() - began) / 60:5.1f} min: " + "; ".join(
                    f"{name}: {now[name]['down'] - start[name]['down']:.0f} false downs"
                    for name in procs), flush=True)
            end = await read_all(procs)
        finally:
            if hog is not None:
                stop_process(hog)
            for s in procs.values():
                s.stop()
            for m in members.values():
                await m.stop()
    print()
    print(f"{len(members)} members, {minutes:g} min, stress-ng --cpu {stress}; defaults: "
          f"interval {D.interval} s, timeout {D.timeout} s, fall {D.fall}, reset {D.reset}, "
          f"rise {D.rise}, keep-alive probes")
    print(f"{'checker':14} {'false downs':>11} {'probes':>8} {'failed':>7} {'inconclusive':>12} "
          f"{'p50 latency':>12} {'p99.9 latency':>14}")
    for name in procs:
        d = {k: end[name][k] - start[name][k] for k in ("ok", "fail", "inconclusive", "down")}
        print(f"{name:14} {d['down']:11.0f} {d['ok'] + d['fail'] + d['inconclusive']:8.0f} "
              f"{d['fail']:7.0f} {d['inconclusive']:12.0f} "
              f"{'<= ' + format(end[name]['p50'], 'g') + ' s':>12} "
              f"{'<= ' + format(end[name]['p99.9'], 'g') + ' s':>14}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--stress", type=int, default=2, help="stress-ng CPU hogs (0: none)")
    p.add_argument("--reference", metavar="GEODNS",
                   help=f"another geodns program to run beside {GEODNS}")
    args = p.parse_args()
    asyncio.run(run(args.minutes, args.stress, args.reference))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Big zones: geodns beside gdnsd on the same 100,000 records and 1,000 pools.

    .venv/bin/python bench/big_zone_bench.py                 # 3 reps
    .venv/bin/python bench/big_zone_bench.py --records 20000 --pools 200 --reps 1

For each repetition and server (interleaved), on the data of bench/big_zone.py:

* start: from the process start to the first answer for `host0` (wall seconds, and the
  CPU seconds the server used until then, the fair figure on a busy machine);
* RSS: resident memory once started and settled (VmRSS, MiB);
* a first pass: dnsperf sends the 10,000 queries (hostN and poolN, A) once at 2,000 a
  second, as a server in service has seen its queries before; its slowest answer is
  reported on its own (every query takes the full path once: caches are cold);
* reload under load: dnsperf sends the same queries at 2,000 a second for `--load`
  seconds; in the middle the zone is rewritten with a new serial and the
  server told to reload (geodns: SIGHUP; gdnsd: `gdnsdctl reload-zones`); the reload
  time (wall, and CPU seconds, serving included) runs until the new serial answers,
  and dnsperf reports the slowest answer and the queries lost (no answer within its
  5 s timeout) over the whole run;
* RSS again after the reload.

Then the medians and geodns / gdnsd ratios. Programs (dnsperf, gdnsd, dig) are
installed with bin/apt-install when missing.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query

from cdn.processes import stop_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
import big_zone  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MMDB = ROOT / "bench" / "geo-test.mmdb"
PORTS = {"geodns": 5393, "gdnsd": 5394}
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    start: list[float] = field(default_factory=list)
    start_cpu: list[float] = field(default_factory=list)
    reload_cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    reload: list[float] = field(default_factory=list)
    rss_after: list[float] = field(default_factory=list)
    max_latency_ms: list[float] = field(default_factory=list)
    cold_max_ms: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)


def serial(port: int) -> int | None:
    q = dns.message.make_query(big_zone.ZONE, "SOA")
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    except Exception:  # not up yet
        return None
    return r.answer[0][0].serial if r.answer else None


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and of its children that it has waited for (the
    geodns process that reads the zones)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def rss_mib(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def command(name: str, data: Path) -> list[str]:
    if name == "geodns":
        return [sys.executable, "-m", "geodns.cli", "serve", "--zones", str(data / "geodns"),
                "--listen", f"127.0.0.1:{PORTS[name]}", "--geoip", str(MMDB),
                "--log-level", "warning"]
    return ["gdnsd", "-c", str(data / "gdnsd"), "start"]


def reload(name: str, proc: subprocess.Popen, data: Path) -> None:
    if name == "geodns":
        proc.send_signal(signal.SIGHUP)
    else:
        subprocess.run(["gdnsdctl", "-c", str(data / "gdnsd"), "reload-zones"],
                       capture_output=True, check=False)


def wait_serial(port: int, want: int, deadline: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        if serial(port) == want:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise RuntimeError(f"serial {want} not served on port {port} within {deadline} s")


def dnsperf(port: int, qfile: Path, seconds: int) -> str:
    return subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
                           "-Q", "2000", "-l", str(seconds), "-c", "1", "-q", "200"],
                          capture_output=True, text=True).stdout


def slowest(text: str) -> float:
    """dnsperf's slowest answer (seconds)."""
    m = re.search(r"Average Latency \(s\):\s+[\d.]+ \(min [\d.]+, max ([\d.]+)\)", text)
    if not m:
        raise RuntimeError(f"dnsperf output not understood:\n{text}")
    return float(m.group(1))


def one(name: str, data: Path, args: argparse.Namespace, qfile: Path, rep: int,
        out: Result, log: Path) -> None:
    port = PORTS[name]
    big_zone.write(data, args.records, args.pools, PORTS["gdnsd"], serial=1)
    t0 = time.monotonic()
    proc = subprocess.Popen(command(name, data), stdout=log.open("a"),
                            stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_serial(port, 1, 300)
        out.start.append(time.monotonic() - t0)
        out.start_cpu.append(cpu_seconds(proc.pid))
        time.sleep(2)
        out.rss.append(rss_mib(proc.pid))
        out.cold_max_ms.append(slowest(dnsperf(port, qfile, 5)) * 1000)
        perf: list[str] = []
        load = threading.Thread(target=lambda: perf.append(dnsperf(port, qfile, args.load)))
        load.start()
        time.sleep(args.load / 3)
        big_zone.write(data, args.records, args.pools, PORTS["gdnsd"], serial=2)
        t1, cpu1 = time.monotonic(), cpu_seconds(proc.pid)
        reload(name, proc, data)
        wait_serial(port, 2, 300)
        out.reload.append(time.monotonic() - t1)
        # includes answering the load meanwhile (2,000 q/s), for both servers alike
        out.reload_cpu.append(cpu_seconds(proc.pid) - cpu1)
        load.join()
        text = perf[0]
        sent = re.search(r"Queries sent:\s+(\d+)", text)
        lost = re.search(r"Queries lost:\s+(\d+)", text)
        if not (sent and lost):
            raise RuntimeError(f"dnsperf output not understood:\n{text}")
        out.max_latency_ms.append(slowest(text) * 1000)
        out.sent.append(int(sent.group(1)))
        out.lost.append(int(lost.group(1)))
        out.rss_after.append(rss_mib(proc.pid))
    finally:
        stop_process(proc)
    print(f"   rep {rep} {name:6} start {out.start[-1]:6.2f} s (cpu {out.start_cpu[-1]:5.2f} s)"
          f"  RSS {out.rss[-1]:5.0f} MiB  first pass max {out.cold_max_ms[-1]:6.1f} ms"
          f"  reload {out.reload[-1]:6.2f} s (cpu "
          f"{out.reload_cpu[-1]:5.2f} s)  under 2,000 q/s: max {out.max_latency_ms[-1]:7.1f} ms"
          f", lost {out.lost[-1]} of {out.sent[-1]:,}  RSS after {out.rss_after[-1]:5.0f} MiB",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pools", type=int, default=1_000)
    parser.add_argument("--load", type=int, default=30, help="seconds of 2,000 q/s")
    args = parser.parse_args()
    missing = [p for p, b in (("dnsperf", "dnsperf"), ("gdnsd", "gdnsd"),
                              ("bind9-dnsutils", "dig")) if shutil.which(b) is None]
    if missing:
        subprocess.run([str(ROOT / "bin" / "apt-install"), *missing], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="big-zone-"))
    rng = random.Random(7)
    qfile = tmp / "queries.txt"
    qfile.write_text("".join(
        f"host{rng.randrange(args.records)}.{big_zone.ZONE} A\n" if i % 2 else
        f"pool{rng.randrange(args.pools)}.{big_zone.ZONE} A\n" for i in range(10_000)))
    print(f"== {args.records:,} records, {args.pools:,} pools; {args.reps} reps; load "
          f"average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)", flush=True)
    results = {name: Result() for name in PORTS}
    for rep in range(1, args.reps + 1):
        for name in PORTS:
            data = tmp / name
            shutil.rmtree(data, ignore_errors=True)
            one(name, data, args, qfile, rep, results[name], tmp / f"{name}.log")
    g, d = results["geodns"], results["gdnsd"]
    med = statistics.median
    print("\n| figure (median) | geodns | gdnsd | geodns / gdnsd |")
    print("|---|---:|---:|---:|")
    for label, a, b in [("start to first answer (s)", g.start, d.start),
                        ("CPU seconds until the first answer", g.start_cpu, d.start_cpu),
                        ("reload to the new serial (s)", g.reload, d.reload),
                        ("CPU seconds of the reload (serving 2,000 q/s too)",
                         g.reload_cpu, d.reload_cpu),
                        ("RSS once started (MiB)", g.rss, d.rss),
                        ("RSS after the reload (MiB)", g.rss_after, d.rss_after),
                        ("slowest answer at 2,000 q/s across the reload (ms)",
                         g.max_latency_ms, d.max_latency_ms),
                        ("slowest answer of the first pass, caches cold (ms)",
                         g.cold_max_ms, d.cold_max_ms)]:
        ratio = f"{med(a) / med(b):.1f}x" if med(b) else "n/a"  # under a clock tick
        print(f"| {label} | {med(a):,.2f} | {med(b):,.2f} | {ratio} |")
    print(f"| queries lost (all runs) | {sum(g.lost)} of {sum(g.sent):,} | "
          f"{sum(d.lost)} of {sum(d.sent):,} | |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One run of wrk (Debian's `wrk`) and the Lua scripts the benches drive it with: every
request posting one fixed JSON body, or a body of its own whose features are random (a
cache miss each time) or cycle through a fixed set. bench/edge_bench.py and
bench/oip_peers.py both measure with it."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

POST = 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
FEATURES_JSON = ('{"features": [', "]}")  # what goes around the numbers: /predict's body


def fixed_post(body: str) -> str:
    """Every request posts `body`."""
    return POST + f"wrk.body = '{body}'\n"


def random_post(seed: int, features: int = 32,
                around: tuple[str, str] = FEATURES_JSON) -> str:
    """Every request posts `features` fresh random numbers, written between `around`."""
    before, after = around
    return POST + f"""math.randomseed(os.time() + {seed})
request = function()
  local f = {{}}
  for j = 1, {features} do f[j] = string.format("%.6f", math.random()) end
  return wrk.format(nil, nil, nil, '{before}' .. table.concat(f, ",") .. '{after}')
end
"""


def cycle_post(distinct: int, features: int = 32,
               around: tuple[str, str] = FEATURES_JSON) -> str:
    """Requests cycle through `distinct` rows of features (row i: ((i * 7919 + j * 104729)
    mod 1000) / 1000 for feature j, as bench/edge_bench.py's `features(i)` makes them)."""
    before, after = around
    return POST + f"""local n = {distinct}
local i = 0
request = function()
  i = (i % n) + 1
  local f = {{}}
  for j = 1, {features} do f[j] = string.format("%.3f", ((i * 7919 + j * 104729) % 1000) / 1000) end
  return wrk.format(nil, nil, nil, '{before}' .. table.concat(f, ",") .. '{after}')
end
"""


def run_wrk(url: str, script: str | None, seconds: int, connections: int,
            cpu: str | None = None) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one wrk run (one thread; on CPU `cpu` if given);
    a run in which any answer was not 2xx is an error."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cpu is not None:
        cmd[:0] = ["taskset", "-c", cpu]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script or "")
    try:
        if script:
            cmd[cmd.index("wrk") + 1:cmd.index("wrk") + 1] = ["-s", f.name]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"errors during the run:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(found.group(1)), _percentile(out, "50"), _percentile(out, "99")


def _percentile(out: str, p: str) -> float:
    found = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if found is None:
        raise RuntimeError(f"no {p}% latency in wrk's output:\n{out}")
    value, unit = found.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

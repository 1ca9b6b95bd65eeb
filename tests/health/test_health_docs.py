"""docs/health.md's shell commands, run as the page shows them: the admin API's curl
lines against a real `geodns serve`, and the two checkers and the DNS server of its
several-servers block on a real Redis (addresses moved to free ports), where the second
checker's override file is the page's own example and reaches the DNS server through
Redis."""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.request

import yaml

from cdn.redis_server import free_port
from doc_commands import block_with, page, run, run_block, shell_env, substitute, workdir

PAGE = "docs/health.md"
TOKEN = "docs-token"


def admin_health(http: str) -> dict:
    with urllib.request.urlopen(f"http://{http}/admin/health", timeout=10) as response:
        return json.load(response)


def wait_for_member(http: str, member: str, test, deadline: float = 60) -> dict:
    """The member's row of /admin/health once `test(row)` holds."""
    end = time.monotonic() + deadline
    while True:
        rows = {r["member"]: r for r in admin_health(http)["members"]}
        if test(rows[member]) or time.monotonic() > end:
            return rows[member]
        time.sleep(0.2)


def test_the_admin_api_lines_show_set_and_remove_an_override(tmp_path, system_program):
    system_program("jq", "jq")
    cwd = workdir(tmp_path, "zones")
    (cwd / "token").write_text(TOKEN)
    http = f"127.0.0.1:{free_port()}"
    server = (f"geodns serve --zones zones --listen 127.0.0.1:{free_port()} --http {http} "
              f"--admin-token-file token --overrides overrides.yaml")
    show, put, delete = [substitute(line, {"127.0.0.1:8053": http})
                         for line in block_with(PAGE, "/admin/overrides/")]
    env = shell_env(TOKEN=TOKEN)
    with run_block([server], cwd, env):
        shown = run(show, cwd, env).stdout
        assert re.search(r'"member": "tokyo",\s*"status": "\w+"', shown), shown
        run(put, cwd, env)
        row = wait_for_member(http, "tokyo", lambda r: "kernel upgrade" in (r["reason"] or ""))
        assert row["status"] == "down" and row["reason"].endswith(": kernel upgrade"), row
        (saved,) = yaml.safe_load((cwd / "overrides.yaml").read_text())["overrides"]
        assert saved["reason"] == "kernel upgrade"
        run(delete, cwd, env)
        assert not admin_health(http)["overrides"]
        assert "kernel upgrade" not in run(show, cwd, env).stdout


def test_two_checkers_and_a_dns_server_share_votes_and_overrides(tmp_path, redis_server):
    cwd = workdir(tmp_path, "zones")
    overrides = re.search(r"```yaml\n(overrides:.*?)```", page(PAGE), re.S).group(1)
    (cwd / "ops.yaml").write_text(overrides)
    http = f"127.0.0.1:{free_port()}"
    moved = {"redis://127.0.0.1:6379/0": redis_server.url, "TOKEN=...": f"TOKEN={TOKEN}",
             "127.0.0.1:9401": f"127.0.0.1:{free_port()}", "127.0.0.1:8053": http}
    lines = [substitute(line, moved) for line in block_with(PAGE, "--vantage eu-1")]
    lines[-1] += f" --listen 127.0.0.1:{free_port()}"  # not the page's default 5353
    with run_block(lines, cwd, shell_env()):
        # the second checker's override file (the page's example) reaches the DNS server
        tokyo = wait_for_member(http, "tokyo", lambda r: "disk swap" in (r["reason"] or ""))
        assert tokyo["status"] == "down" and "disk swap" in tokyo["reason"], tokyo
        end = time.monotonic() + 60
        while sorted(admin_health(http)["redis"]["live_vantages"]) != ["eu-1", "us-1"]:
            assert time.monotonic() < end, admin_health(http)["redis"]
            time.sleep(0.2)
        checker = shlex.split(next(line for line in lines if "--http" in line))
        metrics = urllib.request.urlopen(
            f"http://{checker[checker.index('--http') + 1]}/metrics", timeout=10).read()
        # its metrics give each member one current state (tokyo's line for it is 1)
        tokyo = re.findall(rb'healthcheck_member_state\{[^}]*member="tokyo"[^}]*\} (\S+)', metrics)
        assert sorted(tokyo) == [b"0.0"] * (len(tokyo) - 1) + [b"1.0"], metrics

"""`cdn up` waits until the health checker sees every edge up: anything that goes wrong
while asking counts as "not up yet", and at the deadline the error names what did not
come up and where its log is."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cdn.processes import StartError, http_ready, stop_process
from cdn.redis_server import RedisServer
from cdn.stack import Stack
from geocdn.files import write_private

from .conftest import stack_config


def test_another_web_server_on_the_health_address_is_a_clear_error(tmp_path):
    stack = Stack(stack_config(tmp_path, members=["tokyo"]))
    site = tmp_path / "site"  # a web server that is not geodns: no JSON at this path
    (site / "admin").mkdir(parents=True)
    (site / "admin" / "health").write_text("<html>not the health API</html>\n")
    host, port = stack.config.http.split(":")
    other = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", host, port,
                              "--directory", str(site)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = http_ready(f"http://{stack.config.http}/admin/health")
        deadline = time.monotonic() + 60
        while not ready():
            assert time.monotonic() < deadline, "http.server did not start"
            time.sleep(0.1)
        with pytest.raises(StartError) as err:
            stack.wait_all_up(2)
    finally:
        stop_process(other)
    message = str(err.value)
    assert f"geodns's health API (http://{stack.config.http}/admin/health) did not " \
           "report the pool 'edges' within 2 s (JSONDecodeError:" in message
    assert f"see {stack.run_dir / 'logs' / 'geodns.log'}" in message


def test_edges_that_never_come_up_are_named_with_their_logs(tmp_path):
    stack = Stack(stack_config(tmp_path, members=["tokyo", "london"]))
    stack.config.ready_timeout = 120
    stack.run_dir.mkdir(parents=True)
    write_private(stack.token_file, stack.config.admin_token + "\n")
    stack.redis = RedisServer().start()
    stack.redis_url = stack.redis.url
    try:
        stack._launch(stack.geodns_child())  # the real server; no edge is started
        with pytest.raises(StartError) as err:
            stack.wait_all_up(10)
    finally:
        stack.stop()
    message = str(err.value)
    assert message.startswith("not up after 10 s: edge-london (")
    for name in ("london", "tokyo"):
        assert f"see {stack.run_dir / 'logs' / f'edge-{name}.log'})" in message

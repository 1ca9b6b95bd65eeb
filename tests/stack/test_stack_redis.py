"""`cdn up`'s own Redis requires a password, which reaches its children by the
environment only: a client without it gets nothing, and no command line shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from cdn.stack import REDIS_PASSWORD_ENV


def test_the_stacks_redis_needs_its_password(stack):
    assert stack.redis is not None and stack.redis.password
    anonymous = redis.Redis(host="127.0.0.1", port=stack.redis.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.keys("*")
    owner = redis.Redis(host="127.0.0.1", port=stack.redis.port,
                        password=stack.redis.password, socket_timeout=5)
    assert owner.keys("*")  # the stack's parts are using it: health votes, the stream
    owner.close()
    anonymous.close()


def test_no_command_line_carries_the_password(stack):
    password = stack.env[REDIS_PASSWORD_ENV]
    assert f"${{{REDIS_PASSWORD_ENV}}}" in stack.redis_url and password not in stack.redis_url
    assert stack.redis.proc is not None
    pids = {child.name: child.pid for child in stack.children} | {"redis": stack.redis.proc.pid}
    for name, pid in pids.items():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert password not in cmdline, name

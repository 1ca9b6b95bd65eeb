"""The one HOST:PORT parser (`geocdn.hostport`)."""

from __future__ import annotations

import argparse

import pytest

from geocdn.hostport import HostPortError, format_host_port, host_port_type, parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("localhost:53", ("localhost", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
        (" 127.0.1.1:8000 ", ("127.0.1.1", 8000)),
    ],
)
def test_good_addresses(text, expected):
    assert parse_host_port(text) == expected
    assert parse_host_port(format_host_port(*expected)) == expected


def test_default_port():
    assert parse_host_port("localhost", 8000) == ("localhost", 8000)
    assert parse_host_port("[::1]", 53) == ("::1", 53)
    assert parse_host_port("10.0.0.1:99", 53) == ("10.0.0.1", 99)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("127.0.0.1", "no port"),
        (":53", "no host"),
        ("host:0", "from 1 to 65535"),
        ("host:65536", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
        ("host:", "from 1 to 65535"),
        ("::1:53", "in brackets"),
        ("[::1:53", "closing ']'"),
        ("[::1]53", "':PORT' after ']'"),
        ("[not-v6]:53", "not an IPv6 address"),
    ],
)
def test_bad_addresses_say_what_is_wrong(text, says):
    with pytest.raises(HostPortError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_host_port(text)


def test_argparse_type_reports_a_usage_error(capsys):
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--listen", type=host_port_type())
    assert parser.parse_args(["--listen", "[::1]:53"]).listen == ("::1", 53)
    with pytest.raises(SystemExit):
        parser.parse_args(["--listen", "nope"])
    assert "not HOST:PORT: no port" in capsys.readouterr().err

"""The one admin policy (`geocdn.auth`) over real HTTP, and how tokens are read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from geocdn.auth import TokenError, check_admin, read_token

TOKEN = "s3cret-token"
SAME = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
async def serve(unused_tcp_port_factory):
    """Start an admin app whose one write route counts the writes it carried out."""
    runners = []

    async def start(token: str | None, host: str = "127.0.0.1") -> tuple[str, list[int]]:
        done: list[int] = []

        async def write(request: web.Request) -> web.Response:
            check_admin(request, token)
            done.append(1)
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_route("*", "/admin/thing", write)
        runner = web.AppRunner(app)
        await runner.setup()
        port = unused_tcp_port_factory()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
        return f"http://{host}:{port}/admin/thing", done

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic czNjcmV0"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        (SAME, 200),
        ({"Authorization": f"bearer {TOKEN}"}, 200),  # the scheme is case-insensitive
        # cross-site: what a page on another site can make a browser send
        ({**SAME, "Sec-Fetch-Site": "cross-site"}, 403),
        ({**SAME, "Sec-Fetch-Site": "same-site"}, 403),
        ({**SAME, "Origin": "http://evil.example"}, 403),
        ({**SAME, "Origin": "null"}, 403),
        ({**SAME, "Content-Type": "text/plain"}, 415),
        ({**SAME, "Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({**SAME, "Content-Type": "multipart/form-data; boundary=x"}, 415),
        ({**SAME, "Sec-Fetch-Site": "same-origin"}, 200),
    ],
)
async def test_a_server_with_a_token(serve, headers, status):
    url, done = await serve(TOKEN)
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=b"{}", headers=headers) as r:
            assert r.status == status
            body = await r.json()
            if status == 401:
                assert r.headers["WWW-Authenticate"] == "Bearer"
            if status != 200:
                assert body["error"]
    assert done == ([1] if status == 200 else [])


async def test_the_page_of_the_server_itself_may_write(serve):
    """A same-origin fetch (the dashboard's) carries the server's own Origin."""
    url, done = await serve(TOKEN)
    origin = url.removesuffix("/admin/thing")
    async with aiohttp.ClientSession() as http:
        async with http.put(url, json={}, headers={**SAME, "Origin": origin}) as r:
            assert r.status == 200
    assert done == [1]


async def test_without_a_token_loopback_only_and_never_cross_site(serve):
    url, done = await serve(None)
    port = url.split(":")[2].split("/")[0]
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={}) as r:
            assert r.status == 200
        # A name rebound to 127.0.0.1 by a hostile page's DNS is not a loopback name.
        async with http.post(url, json={}, headers={"Host": f"evil.example:{port}"}) as r:
            assert r.status == 403
        async with http.post(url, data="x", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with http.post(url, json={}, headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 403
    assert done == [1]


async def test_without_a_token_other_clients_are_refused(serve):
    """A client that is not on loopback: a server listening on a non-loopback address
    of this machine sees the machine's own address as the peer."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this picks a local address
            address = s.getsockname()[0]
        except OSError:
            pytest.fail("this machine has no non-loopback IPv4 address to test with")
    if address.startswith("127."):
        pytest.fail("this machine has no non-loopback IPv4 address to test with")
    url, done = await serve(None, host=address)
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={}) as r:
            assert r.status == 403 and "loopback" in (await r.json())["error"]
    assert done == []


def test_tokens_come_from_a_file_or_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("X_TOKEN", raising=False)
    assert read_token(None, "X_TOKEN") is None
    monkeypatch.setenv("X_TOKEN", " from-env\n")
    assert read_token(None, "X_TOKEN") == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    assert read_token(f, "X_TOKEN") == "from-file"  # the file wins
    f.write_text("\n")
    with pytest.raises(TokenError, match="is empty"):
        read_token(f, "X_TOKEN")
    with pytest.raises(TokenError, match="cannot read"):
        read_token(tmp_path / "missing", "X_TOKEN")


@pytest.mark.parametrize("program, otherwise", [
    ("cdn", "without either, a random one, written to RUN_DIR/admin-token"),
    ("edge", "without either, only loopback clients are let in"),
    ("geodns", None), ("healthcheck", None),
])
def test_every_token_option_names_one_default(program, otherwise):
    """--help of each program: the token file's one default is the environment
    variable, then what happens without either, never a second "default"."""
    argv = {"cdn": ["up"], "edge": ["serve"], "geodns": ["serve"]}.get(program, [])
    out = subprocess.run([str(Path(sys.executable).parent / program), *argv, "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # the help's lines joined again
    line = text.split("--admin-token-file FILE ")[-1].split(" --")[0]
    assert line.count("default") == 1, line
    if otherwise:
        assert otherwise in line, line

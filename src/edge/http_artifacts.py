"""``GET|HEAD /models/{name}/{version}/{file}``: artifacts with a strong ETag (SHA-256),
``If-None-Match`` → 304, single byte ranges (``Range`` → 206, ``If-Range``, 416 when
unsatisfiable; several ranges, other units and malformed ranges get the whole file), and
streaming from disk in chunks.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re

from aiohttp import hdrs, web

from edge import routes
from edge.artifacts import ArtifactFile
from edge.http_predict import request_hops
from edge.node import NODE

CHUNK = 256 * 1024
_RANGE = re.compile(r"bytes\s*=\s*(?P<first>[0-9]*)-(?P<last>[0-9]*)", re.IGNORECASE)
IMMUTABLE = "public, max-age=31536000, immutable"


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/").strip('"') == etag for t in header.split(","))


def _byte_range(request: web.Request, art: ArtifactFile) -> tuple[int, int] | None | str:
    """(start, stop) for a satisfiable single byte range, None for the whole file, or
    "unsatisfiable". As RFC 9110 14.2 says: a Range in another unit, of several ranges,
    or that does not parse is ignored (the whole file, 200); ``bytes=-0`` and a range
    starting at or after the end are unsatisfiable (416)."""
    header = request.headers.get(hdrs.RANGE)
    if header is None:
        return None
    if_range = request.headers.get(hdrs.IF_RANGE)
    if if_range is not None and if_range.strip().strip('"') != art.sha256:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or m["first"] == m["last"] == "":
        return None
    first, last = m["first"], m["last"]
    if first == "":  # the last N bytes
        start, stop = max(0, art.size - int(last)), art.size
    else:
        start = int(first)
        stop = min(art.size, int(last) + 1) if last else art.size
        if last and int(last) < start:
            return None  # invalid: ignored
    if start >= stop:
        return "unsatisfiable"
    return start, stop


async def artifact(request: web.Request) -> web.StreamResponse:
    m = request.match_info
    art = await request.app[NODE].artifacts.locate(m["name"], m["version"], m["file"],
                                                   request_hops(request))
    headers = {
        hdrs.ETAG: f'"{art.sha256}"',
        hdrs.CACHE_CONTROL: IMMUTABLE if art.immutable else "no-cache",
        hdrs.ACCEPT_RANGES: "bytes",
    }
    inm = request.headers.get(hdrs.IF_NONE_MATCH)
    if inm is not None and _etag_matches(inm, art.sha256):
        return web.Response(status=304, headers=headers)
    rng = _byte_range(request, art)
    if rng == "unsatisfiable":
        headers[hdrs.CONTENT_RANGE] = f"bytes */{art.size}"
        return web.Response(status=416, headers=headers)
    start, stop = rng if isinstance(rng, tuple) else (0, art.size)
    status = 206 if isinstance(rng, tuple) else 200
    if status == 206:
        headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{art.size}"
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type = mimetypes.guess_type(art.path.name)[0] or "application/octet-stream"
    resp.content_length = stop - start
    await resp.prepare(request)
    if request.method == hdrs.METH_HEAD:
        return resp
    with open(art.path, "rb") as f:
        f.seek(start)
        remaining = stop - start
        while remaining > 0:
            chunk = await asyncio.to_thread(f.read, min(CHUNK, remaining))
            if not chunk:
                break
            await resp.write(chunk)
            remaining -= len(chunk)
    await resp.write_eof()
    return resp


def add_routes(app: web.Application) -> None:
    routes.add(app, "GET", "/models/{name}/{version}/{file}", artifact, "artifact")

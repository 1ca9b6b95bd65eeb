"""One probe of one target: an HTTP GET of the health document, or a TCP connect.

A probe never raises: it returns a `ProbeResult` whose `reason` says what failed (the
connection error, the HTTP status, the document's status) for the state-change log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from geodns.steering.health_settings import HealthSettings

MAX_BODY = 64 * 1024  # a health document is small; never read more than this


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    latency_ms: float
    reason: str = ""  # why it failed, or a short note of what it saw
    draining: bool = False  # the document said `draining` (alive, out of new answers)
    load: float | None = None  # from the document, 0..1
    hit_rate: float | None = None
    timed_out: bool = False  # no answer within the timeout


def probe_kind(url: str, settings: HealthSettings) -> str:
    if settings.type:
        return settings.type
    return "tcp" if url.startswith("tcp://") else "http"


async def probe(url: str, settings: HealthSettings, session: aiohttp.ClientSession) -> ProbeResult:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(settings.timeout):
            if probe_kind(url, settings) == "tcp":
                result = await _probe_tcp(url)
            else:
                result = await _probe_http(url, settings, session)
    except TimeoutError:
        result = ProbeResult(False, 0.0, f"timed out after {settings.timeout:g} s",
                             timed_out=True)
    except (aiohttp.ClientError, OSError) as exc:
        result = ProbeResult(False, 0.0, _describe(exc))
    latency = (time.perf_counter() - start) * 1000
    return ProbeResult(result.ok, latency, result.reason, result.draining, result.load,
                       result.hit_rate, result.timed_out)


def _describe(exc: BaseException) -> str:
    err = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    # TLS errors are OSErrors whose errno is OpenSSL's, not the system's: say what failed.
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {err.verify_message}"
    if isinstance(err, ssl.SSLError):
        return f"TLS: {err.reason or err}"
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    return str(exc) or type(exc).__name__


async def _probe_tcp(url: str) -> ProbeResult:
    parts = urlsplit(url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ProbeResult(True, 0.0, "connected")


async def _probe_http(
    url: str, settings: HealthSettings, session: aiohttp.ClientSession
) -> ProbeResult:
    async with session.get(url, allow_redirects=False) as resp:
        raw = await resp.content.read(MAX_BODY)
    body = raw.decode("utf-8", errors="replace")
    if resp.status not in settings.expect:
        # An edge answers its health document with 503 while draining: still draining.
        doc = read_document(body, resp.status)
        return doc if doc.draining else ProbeResult(False, 0.0, f"HTTP {resp.status}")
    if settings.body is not None and settings.body not in body:
        return ProbeResult(False, 0.0, f"body lacks {settings.body!r}")
    if settings.body_regex is not None and not re.search(settings.body_regex, body):
        return ProbeResult(False, 0.0, f"body does not match /{settings.body_regex}/")
    return read_document(body, resp.status)


def read_document(body: str, http_status: int) -> ProbeResult:
    """Judge an edge health document (see DESIGN.md); a non-JSON body passes as is."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ProbeResult(True, 0.0, f"HTTP {http_status}")
    if not isinstance(doc, dict):
        return ProbeResult(True, 0.0, f"HTTP {http_status}")
    status = doc.get("status", "ok")
    load, hit_rate = _fraction(doc.get("load")), _fraction(doc.get("hit_rate"))
    if status in ("ok", "degraded"):
        return ProbeResult(True, 0.0, f"HTTP {http_status} {status}", False, load, hit_rate)
    if status == "draining":
        return ProbeResult(True, 0.0, "draining", True, load, hit_rate)
    return ProbeResult(False, 0.0, f"document status {status!r}")


def _fraction(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return min(1.0, max(0.0, float(value)))
    return None

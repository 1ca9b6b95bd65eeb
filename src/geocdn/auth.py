"""The one admin-token check of every HTTP admin API (edge, origin, GeoDNS health admin).

Policy, applied by `check_admin(request, token)` before a write is carried out:

* A server with a token: the request must carry ``Authorization: Bearer <token>``;
  without it the answer is 401 (with ``WWW-Authenticate: Bearer``), with any other
  token 403. Tokens are compared in constant time.
* A server without a token accepts writes from loopback clients only, and only when they
  name the server by a loopback address or ``localhost`` (a DNS-rebound name does not
  count); anyone else gets 403.
* Never a cross-site write: a browser's request marked cross-site or same-site by
  ``Sec-Fetch-Site``, or whose ``Origin`` is not the server it is sent to, gets 403, and
  a body sent as a form or text (the types a page may post to any site without asking
  first) gets 415.

Tokens never go on a command line (any local user can read those): `read_token` takes
them from a file (`--admin-token-file`) or an environment variable.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from geocdn.errors import GeocdnError
from geocdn.hostport import HostPortError, parse_host_port

# The request bodies a web page may send to any site without a CORS preflight.
SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenError(GeocdnError, ValueError):
    """The admin token could not be read; the message says from where and why."""


def _refuse(kind: type[web.HTTPException], message: str,
            headers: dict[str, str] | None = None) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json",
                headers=headers)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _cross_site(request: web.Request) -> str | None:
    """Why this request comes from another site, or None."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in ("cross-site", "same-site"):
        return f"the browser marked it {fetch_site}"
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != request.host.lower():
            return f"it comes from {origin}, not from {request.scheme}://{request.host}"
    return None


def check_admin(request: web.Request, token: str | None) -> None:
    """Raise the HTTP error that refuses this admin request, or return to let it run."""
    reason = _cross_site(request)
    if reason:
        raise _refuse(web.HTTPForbidden, f"cross-site admin request refused: {reason}")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if request.method not in SAFE_METHODS and content_type in SIMPLE_CONTENT_TYPES:
        raise _refuse(web.HTTPUnsupportedMediaType,
                      f"admin writes do not accept {content_type} bodies (send JSON)")
    if token is None:
        try:
            host = parse_host_port(request.host, 0)[0]
        except HostPortError:
            host = None
        if not (_is_loopback(request.remote) and _is_loopback(host)):
            raise _refuse(web.HTTPForbidden, "this server has no admin token: admin requests "
                          "are accepted from loopback clients only")
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise _refuse(web.HTTPUnauthorized, "send Authorization: Bearer <admin token>",
                      headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise _refuse(web.HTTPForbidden, "wrong admin token")


def read_token(path: str | Path | None, env_var: str) -> str | None:
    """The admin token from `path` if given, else from `$env_var`, else None."""
    if path is not None:
        try:
            token = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"cannot read the admin token file {path}: {exc}") from None
        if not token:
            raise TokenError(f"the admin token file {path} is empty")
        return token
    return os.environ.get(env_var, "").strip() or None


def add_token_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                     env_var: str, what: str, otherwise: str | None = None) -> None:
    """Add `--admin-token-file FILE`; its help names the one default: `$env_var`, and
    `otherwise` what happens without either."""
    without = f"; without either, {otherwise}" if otherwise else ""
    parser.add_argument("--admin-token-file", metavar="FILE", type=Path,
                        help=f"file holding the admin token {what} (default: ${env_var}"
                        f"{without}; tokens are never given on the command line)")

"""The answer caches' key of a UDP query: what the answer depends on, nothing more.

The answer to a query depends on its header flags, its question (letter case kept: the
response echoes it), its EDNS UDP size, version and DO bit, and two options: Client
Subnet and NSID. A DNS cookie changes only the cookie option of the response (the
client cookie echoed, with a fresh server cookie), and padding or unknown options
change nothing. So the key is the query bytes after the ID with every other option
cut out, and, when a cookie came, the cookie option's header left at the end (its
value cut): a cached response to a cookie-bearing query is kept without the cookie
option's value, which is appended per query.

`cookie_tail` is the quick form for the common shape (the cookie option last, 8 or 24
octets: a client cookie alone, or with our server cookie); `canonical` reads any
shape. Both give the same key for the same query. A key that does not match a cached
entry leads to the full path, which parses strictly; entries are only stored under
keys of queries that parsed, so no malformed query is ever answered from a cache.
"""

from __future__ import annotations

import struct

from geodns.edns import OPT_COOKIE, OPT_ECS, OPT_NSID

KEPT_OPTIONS = (OPT_ECS, OPT_NSID)  # the options an answer depends on
ONE_QUESTION_ONE_ADDITIONAL = b"\x00\x01\x00\x00\x00\x00\x00\x01"
OPTION_HEAD = struct.Struct("!HH")
COOKIE_8 = OPTION_HEAD.pack(OPT_COOKIE, 8)  # a client cookie alone
COOKIE_24 = OPTION_HEAD.pack(OPT_COOKIE, 24)  # client cookie + 16-octet server cookie


def cookie_tail(data: bytes) -> tuple[bytes, bytes] | None:
    """(key, cookie value) when the datagram ends with a cookie option of 8 or 24
    octets; None otherwise. Cheap: two slice comparisons."""
    if data[-12:-8] == COOKIE_8:
        return data[2:-8], data[-8:]
    if data[-28:-24] == COOKIE_24:
        return data[2:-24], data[-24:]
    return None


def canonical(data: bytes) -> tuple[bytes, bytes | None] | None:
    """(key, cookie value or None) of a query of one question and one OPT record with
    something to cut (a cookie, padding, an unknown option); None when there is
    nothing to cut or the query has another shape (its key is then its bytes after
    the ID, and a malformed one is answered by the full path)."""
    if data[4:12] != ONE_QUESTION_ONE_ADDITIONAL:
        return None
    end = len(data)
    pos = 12
    while pos < end and data[pos]:
        if data[pos] & 0xC0:
            return None
        pos += 1 + data[pos]
    opt = pos + 5  # past the root label, QTYPE and QCLASS
    if opt + 11 > end or data[opt : opt + 3] != b"\x00\x00\x29":
        return None
    if opt + 11 + int.from_bytes(data[opt + 9 : opt + 11], "big") != end:
        return None
    kept: list[bytes] = []
    cookie: bytes | None = None
    cut = False
    pos = opt + 11
    while pos < end:
        if pos + 4 > end:
            return None
        code, length = OPTION_HEAD.unpack_from(data, pos)
        nxt = pos + 4 + length
        if nxt > end:
            return None
        if code in KEPT_OPTIONS:
            kept.append(data[pos:nxt])
        elif code == OPT_COOKIE:
            if cookie is not None or not (length == 8 or 16 <= length <= 40):
                return None  # FORMERR, from the full path
            cookie = data[pos + 4 : nxt]
        else:
            cut = True
        pos = nxt
    if cookie is None and not cut:
        return None
    rdlength = sum(map(len, kept))
    if cookie is not None:  # its header stays, and RDLENGTH counts its value, as sent
        kept.append(OPTION_HEAD.pack(OPT_COOKIE, len(cookie)))
        rdlength += 4 + len(cookie)
    return data[2 : opt + 9] + rdlength.to_bytes(2, "big") + b"".join(kept), cookie

"""DNS server cookies (RFC 7873) as RFC 9018 defines them.

A server cookie is VERSION (1) | RESERVED (3 zero octets) | TIMESTAMP (4) | HASH (8),
HASH being SipHash-2-4, keyed with the 16-octet secret, of the client cookie, those
first 8 octets and the client's address. Servers that share `--cookie-secret` accept
each other's cookies, whatever their implementation (BIND's `cookie-algorithm
siphash24`, Knot, ...): that is what RFC 9018 is for within one operator.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
import time

from siphash24 import siphash24

SECRET_SIZE = 16  # SipHash-2-4 takes a 128-bit key
VALID_FOR = 3600  # seconds a server cookie stays valid (RFC 9018 §4.3)
CLOCK_SKEW = 300  # accepted timestamps this far in the future


class CookieJar:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or os.urandom(SECRET_SIZE)
        if len(self.secret) != SECRET_SIZE:
            raise ValueError(f"a cookie secret is {SECRET_SIZE} octets, not {len(self.secret)}")

    def _hash(self, client: bytes, head: bytes, address: str) -> bytes:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        data = client + head + socket.inet_pton(family, address.split("%")[0])
        return siphash24(data, key=self.secret).digest()

    def make(self, client: bytes, address: str, now: float | None = None) -> bytes:
        """The full cookie option data to send back: client cookie + server cookie."""
        head = b"\x01\x00\x00\x00" + struct.pack("!I", int(now or time.time()) & 0xFFFFFFFF)
        return client + head + self._hash(client, head, address)

    def valid(self, cookie: bytes, address: str, now: float | None = None) -> bool:
        """True when the option carries a server cookie that we issued to this client."""
        if len(cookie) != 24 or cookie[8] != 1:
            return False
        client, head, mac = cookie[:8], cookie[8:16], cookie[16:]
        stamp = struct.unpack("!I", head[4:])[0]
        age = int(now or time.time()) - stamp
        if not -CLOCK_SKEW <= age <= VALID_FOR:
            return False
        return hmac.compare_digest(mac, self._hash(client, head, address))

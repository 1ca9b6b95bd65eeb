"""DNS messages on the wire: a strict query parser and the response encoder.

The parser reads exactly what an authoritative server needs (header, the one
question, the additional section with EDNS OPT) and rejects what RFC 1035 and
RFC 6891 call malformed, so that the server can answer FORMERR instead of guessing.
EDNS options are decoded in `geodns.edns`. Responses echo the question bytes as
they came, so the letter case of the query (0x20) is kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import QTYPE
from dnslib.label import DNSBuffer

from geodns.edns import Edns, EdnsError, parse_opt
from geodns.errors import GeoDNSError
from geodns.names import label_text
from geodns.zone import Answer, RRset

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")
QR, AA, TC, RD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0010
OPCODE_MASK = 0x7800
TSIG, BADKEY = 250, 17


class Drop(GeoDNSError):
    """Not worth an answer: shorter than a header, or a response (QR set)."""


class FormErr(GeoDNSError):
    """Malformed query; carries what could be read for the FORMERR response."""

    def __init__(self, reason: str, question: bytes = b"", opt: bool = False) -> None:
        super().__init__(reason)
        self.question = question
        self.opt = opt


class Unsigned(FormErr):
    """A TSIG-signed query: no key is known here, so the answer is NOTAUTH with the
    BADKEY TSIG record `tsig` (RFC 8945 §5.2)."""

    def __init__(self, question: bytes, opt: bool, tsig: bytes) -> None:
        super().__init__("TSIG-signed with a key this server does not have", question, opt)
        self.tsig = tsig


@dataclass(slots=True)
class Query:
    id: int
    flags: int
    question: bytes  # the raw question section (name, type, class), for the echo
    labels: list[bytes]  # the name's labels as sent (letter case kept)
    qname: str  # lowercase absolute
    qtype: int
    qclass: int
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags & OPCODE_MASK) >> 11


def header(data: bytes) -> tuple[int, int, int, int, int, int]:
    if len(data) < 12:
        raise Drop("shorter than a DNS header")
    fields = HEADER.unpack_from(data)
    if fields[1] & QR:
        raise Drop("a response, not a query")
    return fields


def _question(data: bytes, pos: int) -> tuple[list[bytes], int]:
    labels: list[bytes] = []
    total = 1
    while True:
        if pos >= len(data):
            raise FormErr("question name runs past the end")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0:
            raise FormErr("compression or extended label in the question")
        total += length + 1
        if total > 255:
            raise FormErr("question name longer than 255 octets")
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += 1 + length
    if pos + 4 > len(data):
        raise FormErr("question type and class run past the end")
    return labels, pos + 4


def _skip_name(data: bytes, pos: int) -> tuple[int, bool]:
    """Position after a name in a resource record, and whether it is the root."""
    start = pos
    while True:
        if pos >= len(data):
            raise FormErr("record name runs past the end")
        length = data[pos]
        if length == 0:
            return pos + 1, pos == start
        if length & 0xC0 == 0xC0:
            if pos + 2 > len(data):
                raise FormErr("record name runs past the end")
            return pos + 2, False
        if length & 0xC0:
            raise FormErr("extended label type in a record name")
        pos += 1 + length


def _tsig(data: bytes, start: int, end: int, rdata_end: int) -> bytes:
    """The unsigned BADKEY TSIG record answering a TSIG record (RFC 8945 §5.3.2):
    same key name, algorithm, time and fudge, an empty MAC, error 17, no other data.
    `start`: the record's owner name; `end`: its fixed fields; `rdata_end`: its end."""
    owner = data[start:end]
    alg_end, _ = _skip_name(data, end + 10)
    if owner[-1:] != b"\x00" or data[alg_end - 1] != 0 or alg_end + 16 > rdata_end:
        raise FormErr("malformed TSIG record")  # names in TSIG are never compressed
    algorithm = data[end + 10 : alg_end]
    signed_fudge = data[alg_end : alg_end + 8]
    mac_size = int.from_bytes(data[alg_end + 8 : alg_end + 10], "big")
    original_id = data[alg_end + 10 + mac_size : alg_end + 12 + mac_size]
    if alg_end + 16 + mac_size > rdata_end:
        raise FormErr("malformed TSIG record")
    rdata = algorithm + signed_fudge + b"\x00\x00" + original_id + struct.pack("!HH", BADKEY, 0)
    return owner + RR_FIXED.pack(TSIG, 255, 0, len(rdata)) + rdata


def parse(data: bytes) -> Query:
    """Parse a query; raise Drop or FormErr. The opcode is checked by the caller."""
    qid, flags, qd, an, ns, ar = header(data)
    question, pos = b"", 12
    labels: list[bytes] = []
    qtype = qclass = 0
    for i in range(qd):  # every question is read so that an OPT after them is found
        found, end = _question(data, pos)
        if i == 0:
            labels, question = found, data[pos:end]
            qtype, qclass = struct.unpack_from("!HH", data, end - 4)
        pos = end
    edns: Edns | None = None
    seen_opt = False
    tsig = b""
    for i in range(an + ns + ar):
        start = pos
        end, root = _skip_name(data, pos)
        if end + 10 > len(data):
            raise FormErr("a record runs past the end", question, seen_opt)
        rtype, rclass, ttl, rdlen = RR_FIXED.unpack_from(data, end)
        rdata_end = end + 10 + rdlen
        if rdata_end > len(data):
            raise FormErr("record data runs past the end", question, seen_opt)
        if i >= an + ns and rtype == QTYPE.OPT:
            if seen_opt:
                raise FormErr("two OPT records", question, True)
            seen_opt = True
            if not root:
                raise FormErr("OPT record not owned by the root", question, True)
            try:
                edns = parse_opt(rclass, ttl, data[end + 10 : rdata_end])
            except EdnsError as e:
                raise FormErr(str(e), question, True) from None
        elif rtype == TSIG:
            if i != an + ns + ar - 1:
                raise FormErr("TSIG record is not the last record", question, seen_opt)
            tsig = _tsig(data, start, end, rdata_end)
        pos = rdata_end
    # RFC 6891 §6.1.1: a FORMERR to a query with OPT carries OPT too.
    if qd > 1:
        raise FormErr("more than one question", b"", seen_opt)
    if an or ns:
        raise FormErr("a query with answer or authority records", question, seen_opt)
    if pos != len(data):
        raise FormErr("trailing bytes after the message", question, seen_opt)
    if qd == 0 and not (edns and edns.cookie):
        raise FormErr("no question", b"", seen_opt)
    if tsig:
        raise Unsigned(question, seen_opt, tsig)
    qname = "".join(label_text(label.lower()) + "." for label in labels) or "."
    return Query(qid, flags, question, labels, qname, qtype, qclass, edns)


def _register_question(buf: DNSBuffer, labels: list[bytes]) -> None:
    """Let answer names compress against the question (in the query's case)."""
    offset = 12
    lowered = [label.lower() for label in labels]
    for i in range(len(labels)):
        buf.names.setdefault(tuple(lowered[i:]), offset)
        offset += len(labels[i]) + 1


def _pack(buf: DNSBuffer, rrsets: list[RRset]) -> list[tuple[int, int]]:
    """Pack RRsets; return (end offset, records so far) after each RRset."""
    marks, count = [], 0
    for rrset in rrsets:
        count += rrset.pack(buf)
        marks.append((len(buf.data), count))
    return marks


def encode(query: Query, ans: Answer, opt: bytes, limit: int) -> bytes:
    """Encode a response; over `limit` octets the additional section goes first,
    then (TC set) every record: never a partial RRset. `opt` is the OPT RR or b""."""
    buf = DNSBuffer(bytes(12) + query.question)
    buf.offset = len(buf.data)
    if query.labels:
        _register_question(buf, query.labels)
    an = _pack(buf, ans.answer)
    ns = _pack(buf, ans.authority)
    ad = _pack(buf, ans.additional)
    counts = [an[-1][1] if an else 0, ns[-1][1] if ns else 0, ad[-1][1] if ad else 0]
    flags = QR | (query.flags & (OPCODE_MASK | RD | CD)) | (ans.rcode & 0xF)
    if ans.aa:
        flags |= AA
    room = limit - len(opt)
    if len(buf.data) > room:
        fit = [m for m in ad if m[0] <= room]
        body_end = ns[-1][0] if ns else an[-1][0] if an else 12 + len(query.question)
        if body_end <= room and not (ans.glue_required and ad):
            end = fit[-1][0] if fit else body_end
            counts[2] = fit[-1][1] if fit else 0
        else:
            end, counts, flags = 12 + len(query.question), [0, 0, 0], flags | TC
        del buf.data[end:]
        buf.offset = end
    qd = 1 if query.question else 0
    buf.data[:12] = HEADER.pack(query.id, flags, qd, counts[0], counts[1],
                                counts[2] + (1 if opt else 0))
    return bytes(buf.data) + opt


def error(data: bytes, rcode: int, question: bytes = b"", opt: bytes = b"",
          tsig: bytes = b"") -> bytes:
    """A bare error response (FORMERR, NOTIMP, REFUSED...) echoing what is known.
    RD and CD are copied only for a standard query: under another opcode those bits
    may mean something else."""
    qid, flags = struct.unpack_from("!HH", data)
    copied = OPCODE_MASK | RD | CD if not flags & OPCODE_MASK else OPCODE_MASK
    out_flags = QR | (flags & copied) | (rcode & 0xF)
    additional = (1 if opt else 0) + (1 if tsig else 0)
    return HEADER.pack(qid, out_flags, 1 if question else 0, 0, 0, additional) + \
        question + opt + tsig

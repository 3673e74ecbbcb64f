"""RTCP (RFC 3550 §6): sender/receiver reports with a report block (loss, jitter) and an SDES CNAME.

The statistics themselves (RFC 3550 appendix A.3/A.8: extended highest sequence, expected and lost packets,
interarrival jitter in timestamp units) are kept per call by the RTP hub, vectorised; :func:`build_report`
writes them, :func:`parse_reports` reads what a peer reports.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SR = 200
RR = 201
SDES = 202
BYE = 203
_BLOCK = struct.Struct("!IBBHIIII")  # ssrc, fraction, lost (24-bit in 3 bytes: B+H), ext seq, jitter, lsr, dlsr


@dataclass(frozen=True)
class ReportBlock:
    """One report block: about ``ssrc``, as seen by the report's sender."""

    ssrc: int
    fraction_lost: float
    cumulative_lost: int
    extended_max: int
    jitter: int


def build_report(ssrc: int, cname: str, block: ReportBlock | None, sent: tuple[int, int, int] | None,
                 ntp: tuple[int, int] = (0, 0)) -> bytes:
    """An SR (``sent`` = (rtp timestamp, packets, octets)) or RR, with ``block`` when something was received."""
    blocks = b""
    if block is not None:
        lost24 = max(min(block.cumulative_lost, 0x7FFFFF), -0x800000) & 0xFFFFFF
        fraction = min(int(block.fraction_lost * 256), 255)
        blocks = _BLOCK.pack(block.ssrc, fraction, lost24 >> 16, lost24 & 0xFFFF, block.extended_max & 0xFFFFFFFF,
                             block.jitter, 0, 0)
    count = len(blocks) // _BLOCK.size
    if sent is not None:
        body = struct.pack("!IIIIII", ssrc, ntp[0], ntp[1], sent[0] & 0xFFFFFFFF, sent[1], sent[2]) + blocks
        packet = struct.pack("!BBH", 0x80 | count, SR, len(body) // 4) + body
    else:
        body = struct.pack("!I", ssrc) + blocks
        packet = struct.pack("!BBH", 0x80 | count, RR, len(body) // 4) + body
    name = cname.encode()[:255]
    item = struct.pack("!IBB", ssrc, 1, len(name)) + name + b"\0"
    item += b"\0" * (-len(item) % 4)
    return packet + struct.pack("!BBH", 0x81, SDES, len(item) // 4) + item


def parse_reports(data: bytes) -> tuple[int | None, list[ReportBlock]]:
    """The sender SSRC and report blocks of a compound RTCP packet; ``ValueError`` when malformed."""
    blocks: list[ReportBlock] = []
    sender: int | None = None
    offset = 0
    while offset + 4 <= len(data):
        first, kind, words = struct.unpack_from("!BBH", data, offset)
        if first >> 6 != 2:
            raise ValueError("RTCP version is not 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise ValueError("RTCP length beyond the packet")
        if kind in (SR, RR) and end >= offset + 8:
            sender = struct.unpack_from("!I", data, offset + 4)[0]
            at = offset + (28 if kind == SR else 8)
            for _ in range(first & 0x1F):
                if at + _BLOCK.size > end:
                    raise ValueError("report block beyond the packet")
                ssrc, fraction, hi, lo, ext, jitter, _lsr, _dlsr = _BLOCK.unpack_from(data, at)
                lost = (hi << 16) | lo
                lost = lost - (1 << 24) if lost & 0x800000 else lost
                blocks.append(ReportBlock(ssrc, fraction / 256, lost, ext, jitter))
                at += _BLOCK.size
        offset = end
    if offset != len(data):
        raise ValueError("trailing bytes after the RTCP packets")
    return sender, blocks

"""RTP packets (RFC 3550 §5.1): the fixed 12-byte header, read and written; sequence arithmetic.

One packet is :func:`parse_rtp` / :func:`build_rtp`; a batch of outgoing packets is built in one numpy pass by
:func:`write_headers` (the RTP hub sends every call's packet of a tick at once).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

RTP_VERSION = 2
HEADER_BYTES = 12
_HEADER = struct.Struct("!BBHII")
MAX_PAYLOAD_BYTES = 1500


class RtpError(ValueError):
    """Not an RTP packet this engine accepts (wrong version, too short, padding or extension beyond it)."""


@dataclass(frozen=True)
class RtpPacket:
    """One received packet: header fields and the payload (a view: copy before keeping it)."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: memoryview


def parse_rtp(data: bytes | memoryview) -> RtpPacket:
    """Parse one packet; :class:`RtpError` when malformed. CSRCs, extension and padding are skipped."""
    view = memoryview(data)
    if len(view) < HEADER_BYTES:
        raise RtpError(f"{len(view)} bytes: shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(view)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}")
    start = HEADER_BYTES + 4 * (first & 0x0F)
    end = len(view)
    if first & 0x10:  # header extension
        if end < start + 4:
            raise RtpError("truncated header extension")
        start += 4 + 4 * int.from_bytes(view[start + 2 : start + 4], "big")
    if first & 0x20:  # padding
        end -= view[-1]
    if start > end:
        raise RtpError("header longer than the packet")
    return RtpPacket(second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, view[start:end])


def build_rtp(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
              marker: bool = False) -> bytes:
    """One packet's bytes."""
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return _HEADER.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + payload


def write_headers(out: np.ndarray, payload_types: np.ndarray, markers: np.ndarray, sequences: np.ndarray,
                  timestamps: np.ndarray, ssrcs: np.ndarray) -> None:
    """Write the headers of a batch into the first 12 bytes of each row of ``out`` (uint8, one row a packet)."""
    out[:, 0] = 0x80
    out[:, 1] = (payload_types & 0x7F) | (markers.astype(np.uint8) << 7)
    out[:, 2:4] = (sequences & 0xFFFF).astype(">u2").view(np.uint8).reshape(-1, 2)
    out[:, 4:8] = (timestamps & 0xFFFFFFFF).astype(">u4").view(np.uint8).reshape(-1, 4)
    out[:, 8:12] = (ssrcs & 0xFFFFFFFF).astype(">u4").view(np.uint8).reshape(-1, 4)


def seq_delta(a: int, b: int) -> int:
    """``a − b`` in 16-bit sequence space, in ``[-32768, 32767]``."""
    return ((a - b + 32768) & 0xFFFF) - 32768


def ts_delta(a: int, b: int) -> int:
    """``a − b`` in 32-bit timestamp space, signed."""
    return ((a - b + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)

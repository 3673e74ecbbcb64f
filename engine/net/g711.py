"""G.711 μ-law and A-law with numpy tables, bit-exact with the stdlib's ``audioop`` (gone in Python 3.13).

Encoding is one table look-up per sample (65,536 entries indexed by the sample's 16 bits); decoding one look-up
in a 256-entry table, or, for rows of an even number of codes (packets), one look-up per *pair* of codes in a
65,536-entry table of sample pairs (:func:`decode_pairs`: half the look-ups). The tables are computed at import
from the ITU/Sun reference algorithm that ``audioop`` implements (μ-law on the sample's top 14 bits, A-law on its
top 13 bits).
"""

from __future__ import annotations

import numpy as np

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159


def _all_samples() -> np.ndarray:
    """Every int16 value, ordered by its 16 bits read as uint16 (index ``i`` holds ``int16(i)``)."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encoder() -> np.ndarray:
    pcm = _all_samples() >> 2
    negative = pcm < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, magnitude, side="left")
    uval = (np.minimum(seg, 7) << 4) | ((magnitude >> (np.minimum(seg, 7) + 1)) & 0xF)
    out = np.where(seg >= 8, 0x7F ^ mask, uval ^ mask)
    return out.astype(np.uint8)


def _build_alaw_encoder() -> np.ndarray:
    pcm = _all_samples() >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_SEG_AEND, magnitude, side="left")
    clipped = np.minimum(seg, 7)
    quant = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(clipped, 1)) & 0xF
    aval = (clipped << 4) | quant
    out = np.where(seg >= 8, 0x7F ^ mask, aval ^ mask)
    return out.astype(np.uint8)


def _build_ulaw_decoder() -> np.ndarray:
    u = (~np.arange(256, dtype=np.int32)) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decoder() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encoder()
ALAW_ENCODE = _build_alaw_encoder()
ULAW_DECODE = _build_ulaw_decoder()
ALAW_DECODE = _build_alaw_decoder()
for _table in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
    _table.setflags(write=False)



def _pair_table(decode_table: np.ndarray) -> np.ndarray:
    """By two codes read as one little-endian uint16 (first code low): their two samples as one int32."""
    pairs = np.arange(65536)
    both = np.stack([decode_table[pairs & 0xFF], decode_table[pairs >> 8]], axis=1)  # sample order in memory
    table = np.ascontiguousarray(both, dtype="<i2").view("<i4")[:, 0].astype(np.int32)
    table.setflags(write=False)
    return table


#: RTP static payload types (RFC 3551) → (encode table, decode table).
PCMU = 0
PCMA = 8
#: The laws' encoding names (RFC 3551), by static payload type.
NAMES = {PCMU: "PCMU", PCMA: "PCMA"}
ENCODERS = {PCMU: ULAW_ENCODE, PCMA: ALAW_ENCODE}
DECODERS = {PCMU: ULAW_DECODE, PCMA: ALAW_DECODE}
_PAIR_DECODERS = {PCMU: _pair_table(ULAW_DECODE), PCMA: _pair_table(ALAW_DECODE)}
#: The code of digital silence in each law (what ``encode`` gives for sample 0).
SILENCE_CODE = {PCMU: int(ULAW_ENCODE[0]), PCMA: int(ALAW_ENCODE[0])}


def encode(samples: np.ndarray, payload_type: int) -> np.ndarray:
    """int16 samples (any shape) → G.711 codes (uint8) of ``payload_type`` (:data:`PCMU` or :data:`PCMA`)."""
    return np.take(ENCODERS[payload_type], np.ascontiguousarray(samples, dtype=np.int16).view(np.uint16))


def decode(codes: np.ndarray | bytes, payload_type: int) -> np.ndarray:
    """G.711 codes (uint8 array or bytes, any shape) of ``payload_type`` → int16 samples.

    Both directions are one ``np.take`` in a table (twice as fast as indexing the table with the array).
    """
    data = np.frombuffer(codes, dtype=np.uint8) if isinstance(codes, bytes | bytearray | memoryview) else codes
    return np.take(DECODERS[payload_type], data)


def decode_pairs(codes: np.ndarray, payload_type: int) -> np.ndarray:
    """Rows of G.711 codes (uint8, shape (rows, even width), any strides) → int16 samples: :func:`decode`'s result.

    One look-up per two codes, in a table of sample pairs.
    """
    rows, width = codes.shape
    if width % 2:
        return decode(codes, payload_type)
    pairs = np.ascontiguousarray(codes).view("<u2")
    return np.take(_PAIR_DECODERS[payload_type], pairs).view(np.int16).reshape(rows, width)

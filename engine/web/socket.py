"""The page's WebSocket: what a page may send, the limits, and the closing reasons.

Page → server. Text: one JSON object of at most :data:`MAX_TEXT_BYTES`, ``{"type": "key", "key": "5"}`` (one of
0-9 * # A-D). Binary: microphone audio, 8 kHz int16 little-endian, an even number of bytes, at most
:data:`MAX_BINARY_BYTES`. Server → page: see :mod:`engine.web.phone`.

A malformed message (``1003``), an oversized one (``1009``) or a flood (``1008``: more than the
:class:`RateLimit` of messages, keys or microphone bytes) closes *that* socket with a reason naming what was
wrong; the call, and every other call, go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.core.orders import DTMF_KEYS
from engine.format import SAMPLE_RATE_HZ

MAX_TEXT_BYTES = 256
MAX_BINARY_BYTES = 3200  # 200 ms of microphone audio
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
CLOSE_TOO_BIG = 1009


class SocketClose(Exception):  # noqa: N818 - a reason to close, not a failure
    """Close the socket with ``code`` and ``reason`` (at most 120 characters)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]


@dataclass
class RateLimit:
    """A token bucket: ``rate_per_s`` sustained, ``burst`` at once. Time in seconds, given by the caller."""

    rate_per_s: float
    burst: float
    tokens: float = -1.0
    last_s: float = 0.0

    def take(self, amount: float, now_s: float) -> bool:
        """Spend ``amount``; False (nothing spent) when the bucket has less."""
        if self.tokens < 0:
            self.tokens, self.last_s = self.burst, now_s
        self.tokens = min(self.burst, self.tokens + (now_s - self.last_s) * self.rate_per_s)
        self.last_s = now_s
        if amount > self.tokens:
            return False
        self.tokens -= amount
        return True


class PageInput:
    """Checks each message a page sends and turns it into a key or microphone samples.

    Limits (defaults): 100 messages/s (burst 200), 10 keys/s (burst 20), microphone 1.5× real time (burst 1 s).
    """

    def __init__(self) -> None:
        self.messages = RateLimit(100, 200)
        self.keys = RateLimit(10, 20)
        self.mic_bytes = RateLimit(1.5 * 2 * SAMPLE_RATE_HZ, 2 * SAMPLE_RATE_HZ)

    def take(self, message: dict[str, Any], now_s: float) -> tuple[str, Any]:
        """A received ASGI message → ``("key", key)`` or ``("mic", samples)``; raises :class:`SocketClose`."""
        if not self.messages.take(1, now_s):
            raise SocketClose(CLOSE_POLICY, "flooding: more than 100 messages per second")
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            return "mic", self._mic(data, now_s)
        if text is None:
            raise SocketClose(CLOSE_UNSUPPORTED, "malformed: neither text nor binary")
        return "key", self._key(text, now_s)

    def _mic(self, data: bytes, now_s: float) -> np.ndarray:
        if len(data) > MAX_BINARY_BYTES:
            raise SocketClose(CLOSE_TOO_BIG, f"microphone: {len(data)} bytes; at most {MAX_BINARY_BYTES}")
        if len(data) % 2:
            raise SocketClose(CLOSE_UNSUPPORTED, "microphone: an odd number of bytes (int16 samples expected)")
        if not self.mic_bytes.take(len(data), now_s):
            raise SocketClose(CLOSE_POLICY, "flooding: microphone audio faster than real time")
        return np.frombuffer(data, dtype="<i2").astype(np.int16)

    def _key(self, text: str, now_s: float) -> str:
        if len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
            raise SocketClose(CLOSE_TOO_BIG, f"message: over {MAX_TEXT_BYTES} bytes")
        try:
            body = json.loads(text)
        except ValueError:
            raise SocketClose(CLOSE_UNSUPPORTED, "malformed: not JSON") from None
        if not isinstance(body, dict) or body.get("type") != "key":
            raise SocketClose(CLOSE_UNSUPPORTED, 'type: expected {"type": "key", "key": ...}')
        key = body.get("key")
        if not isinstance(key, str) or len(key) != 1 or key not in DTMF_KEYS:
            raise SocketClose(CLOSE_UNSUPPORTED, "key: must be one of 0-9 * # A-D")
        if not self.keys.take(1, now_s):
            raise SocketClose(CLOSE_POLICY, "flooding: more than 10 keys per second")
        return key

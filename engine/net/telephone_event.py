"""RFC 4733 telephone-events: the 4-byte payload, and the receiver that turns events back into DTMF tones.

A key sent by RFC 4733 is not passed around the detector: :class:`ToneEvents` renders each event as the DTMF
tone it stands for, at its volume (−``volume`` dBm0) and for its duration, into the caller's audio at the
event's RTP timestamp, where the in-band detector decodes it like any key. So one event is one key however
many retransmissions and end packets arrive (they render the same samples again), and a key sent both in-band
and by RFC 4733 is one continuous tone, one key (the event's samples replace the audio's).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLE_RATE_HZ, to_int16

EVENT_KEYS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
#: An event not yet ended goes on sounding this long past its last reported duration (samples), when its
#: updates are late; RFC 4733 senders update every 50 ms.
HOLD_SAMPLES = 480
#: Events kept to recognise retransmissions.
REMEMBERED = 8
MAX_VOLUME = 63


@dataclass(frozen=True)
class EventPayload:
    """One telephone-event payload: ``event`` 0-15 for keys, ``end`` bit, ``volume`` (−dBm0), ``duration``."""

    event: int
    end: bool
    volume: int
    duration: int


def parse_event(payload: bytes | memoryview) -> EventPayload:
    """Parse the first 4 bytes of a telephone-event payload; ``ValueError`` when shorter."""
    if len(payload) < 4:
        raise ValueError(f"telephone-event payload of {len(payload)} bytes (4 needed)")
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return EventPayload(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(key: str, end: bool, volume: int, duration: int) -> bytes:
    """The payload for ``key`` (one of :data:`EVENT_KEYS`)."""
    return _PAYLOAD.pack(EVENT_KEYS.index(key), (0x80 if end else 0) | (volume & 0x3F), duration & 0xFFFF)


@dataclass
class _Event:
    key: str
    start: int  # RTP timestamp of the event's first sample
    duration: int  # samples known so far
    volume: int
    ended: bool
    tone: np.ndarray  # the rendered tone, grown as needed


class ToneEvents:
    """The events of one stream, rendered as tones over the frames the jitter buffer plays out.

    ``count``: events seen (keys); ``packets``: event packets accepted.
    """

    def __init__(self) -> None:
        self._events: list[_Event] = []
        self.count = 0
        self.packets = 0

    def add(self, timestamp: int, payload: EventPayload) -> None:
        """Take one event packet (its RTP ``timestamp`` is the event's start)."""
        if payload.event >= len(EVENT_KEYS):
            return  # not a DTMF key (flash, modem tones): ignored
        self.packets += 1
        for event in self._events:
            if event.start == timestamp:
                if not event.ended:
                    event.duration = max(event.duration, payload.duration)
                    event.ended = payload.end
                return
        key = EVENT_KEYS[payload.event]
        self._events.append(_Event(key, timestamp, payload.duration, payload.volume, payload.end,
                                   np.zeros(0, np.int16)))
        self._events = self._events[-REMEMBERED:]
        self.count += 1

    def add_key(self, key: str, timestamp: int, duration_samples: int, volume: int = 10) -> None:
        """An event known whole at once (SIP INFO ``application/dtmf-relay``), starting at ``timestamp``."""
        self.add(timestamp, EventPayload(EVENT_KEYS.index(key), True, volume, duration_samples))

    def render(self, frame: np.ndarray, frame_timestamp: int) -> bool:
        """Write the tone of any event overlapping ``frame`` (RTP timestamps from ``frame_timestamp``).

        Returns True when some sample was replaced.
        """
        written = False
        n = len(frame)
        for event in self._events:
            offset = ((frame_timestamp - event.start + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            length = event.duration if event.ended else event.duration + HOLD_SAMPLES
            if offset + n <= 0 or offset >= length or length <= 0:
                continue
            first, last = max(offset, 0), min(offset + n, length)
            if len(event.tone) < last:
                event.tone = _tone(event.key, event.volume, max(last, 2 * len(event.tone), SAMPLE_RATE_HZ // 4))
            frame[first - offset : last - offset] = event.tone[first:last]
            written = True
        return written


def _tone(key: str, volume: int, samples: int) -> np.ndarray:
    return to_int16(dtmf_tone(key, samples * 1000 / SAMPLE_RATE_HZ, level_dbm0=-float(min(volume, MAX_VOLUME))))

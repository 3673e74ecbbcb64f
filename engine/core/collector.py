"""Key collection for the getkey order, per the contract's "Key collection" rules. Pure: time is in samples.

Collection opens when the getkey order starts (``opened_at_sample``) and ends with the first of: ``max_keys`` keys;
the end key (not part of the digits); ``inter_key_samples`` without a key after at least one key; the order's
total time (``total_samples`` after opening), or — when that is 0 — the end of the silence after the last play
(``natural_end_sample``, fixed when the order starts: barge-in does not move it); the caller hanging up.
"""

from __future__ import annotations

from enum import StrEnum

from engine.core.orders import KeyCollection


class EndReason(StrEnum):
    """Why collection ended; the values are the contract's ``endReason`` spellings."""

    MAX_KEYS = "maxRevCnt"
    END_KEY = "key2End"
    INTER_KEY_TIMEOUT = "spaceTime"
    TOTAL_TIMEOUT = "totalTime"
    HANGUP = "hangup"


class Collector:
    """Collects keys from ``opened_at_sample`` under ``rule``; ``natural_end_sample`` is used when total time is 0."""

    def __init__(self, rule: KeyCollection, opened_at_sample: int, natural_end_sample: int) -> None:
        self.rule = rule
        self.opened_at_sample = opened_at_sample
        total = rule.total_samples
        self._total_deadline_sample = opened_at_sample + total if total else natural_end_sample
        self.digits = ""
        self.end_key_pressed = False
        self.last_key_at_sample: int | None = None
        self.end_reason: EndReason | None = None
        self.ended_at_sample: int | None = None

    @property
    def closed(self) -> bool:
        """True once collection has ended."""
        return self.end_reason is not None

    @property
    def answered(self) -> bool:
        """True when the caller pressed at least one key (digits or the end key)."""
        return bool(self.digits) or self.end_key_pressed

    def _next_timeout(self) -> tuple[int, EndReason]:
        if self.rule.inter_key_samples and self.last_key_at_sample is not None:
            inter_key_deadline = self.last_key_at_sample + self.rule.inter_key_samples
            if inter_key_deadline < self._total_deadline_sample:
                return inter_key_deadline, EndReason.INTER_KEY_TIMEOUT
        return self._total_deadline_sample, EndReason.TOTAL_TIMEOUT

    def deadline(self) -> int:
        """The sample at which collection times out if no further key arrives."""
        return self._next_timeout()[0]

    def add_key(self, key: str, onset: int, now: int) -> bool:
        """Offer a key whose tone began at sample ``onset``, decided at sample ``now``.

        Returns True when the key was collected (collection open and the tone began after it opened).
        """
        if self.closed or onset < self.opened_at_sample:
            return False
        self.expire(now)
        if self.closed:
            return False
        self.last_key_at_sample = now
        if self.rule.end_key is not None and key == self.rule.end_key:
            self.end_key_pressed = True
            self._close(EndReason.END_KEY, now)
            return True
        self.digits += key
        if self.rule.max_keys and len(self.digits) >= self.rule.max_keys:
            self._close(EndReason.MAX_KEYS, now)
        return True

    def expire(self, now: int) -> bool:
        """Close by timeout when ``now`` has reached the deadline; returns True when closed."""
        if not self.closed:
            at, reason = self._next_timeout()
            if now >= at:
                self._close(reason, at)
        return self.closed

    def hang_up(self, now: int) -> None:
        """The caller hung up at sample ``now``."""
        if not self.closed:
            self._close(EndReason.HANGUP, now)

    def _close(self, reason: EndReason, at: int) -> None:
        self.end_reason = reason
        self.ended_at_sample = at

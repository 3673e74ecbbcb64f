"""What a playing request reports: how it finished, the keys it collected, and the player's live status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.core.collector import EndReason


class Result(StrEnum):
    """How a request finished; the values are the contract's ``multrpt`` ``result`` spellings."""

    COMPLETE = "complete"
    STOPPED = "stopped"
    HANGUP = "hangup"
    ERROR = "error"


@dataclass(frozen=True)
class KeysReport:
    """Key collection ended (``ivrreportdtmf``): ``digits`` without the end key, at ``at_sample`` of the request."""

    digits: str
    reason: EndReason
    data: str
    at_sample: int


@dataclass(frozen=True)
class RequestReport:
    """The request finished (``multrpt``) at ``at_sample``; ``digits`` is None when no key was collected."""

    result: Result
    digits: str | None
    at_sample: int


PlayerEvent = KeysReport | RequestReport


@dataclass(frozen=True)
class Status:
    """What is playing now, for a live display (``repetition`` and ``loop`` count from 0)."""

    loop: int
    order_index: int
    repetition: int
    in_gap: bool
    collecting: bool
    digits: str
    samples_to_deadline: int | None

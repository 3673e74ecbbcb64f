"""The domain types of a multOrders request, in snake_case and samples (the wire lives in ``request``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: Every DTMF key a caller can press, in keypad order.
DTMF_KEYS = "123A456B789C*0#D"


class PlayKind(Enum):
    """What ``source`` of an order is: text to speak, or a file in the voice library."""

    SPEECH = 0
    FILE = 1


@dataclass(frozen=True)
class KeyCollection:
    """The key-collection rules of a getkey order (all times in samples; 0 means "no such limit").

    ``max_keys``: collection ends when this many keys arrived. ``end_key``: the key that ends collection early
    (not part of the digits), or ``None``. ``inter_key_samples``: the longest wait between keys once the first
    arrived. ``total_samples``: the longest time collection stays open from the start of the order; 0 means until
    the silence after the last play ends.
    """

    max_keys: int = 0
    end_key: str | None = None
    inter_key_samples: int = 0
    total_samples: int = 0


@dataclass(frozen=True)
class Order:
    """One play order: ``source`` played ``plays`` times with ``gap_samples`` of silence between plays.

    ``collect`` is set on the getkey order (the last one only). ``data`` is the user data echoed in its events.
    """

    kind: PlayKind
    source: str
    plays: int = 1
    gap_samples: int = 0
    collect: KeyCollection | None = None
    data: str = ""


@dataclass(frozen=True)
class MultOrders:
    """A validated multOrders request: ``orders`` run in sequence, the whole list ``loops`` times."""

    app_id: str
    call_id: str
    orders: tuple[Order, ...]
    loops: int = 1

    @property
    def collecting(self) -> bool:
        """True when the last order collects keys."""
        return self.orders[-1].collect is not None

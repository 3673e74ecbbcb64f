"""The timeline of a request: which audio plays when, in samples. Pure functions over plain arrays.

An order is played ``plays`` times with ``gap_samples`` of silence between plays (none after the last). The
getkey order is followed by the gap after every play, the last one included, and then lasts exactly as long
as collection stays open (see :mod:`engine.core.collector`); without keys that is ``total_samples`` when set, else
the end of its last gap.

Nothing here is materialised per play or per loop: a segment is made when the player reaches it
(:func:`next_segment`) and every length is a product, so ``plays`` or ``loops`` of 2³¹−1 cost what one costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.core.orders import MultOrders, Order


@dataclass(frozen=True)
class Program:
    """A validated request with the audio of each order (8 kHz mono int16), ready to play."""

    request: MultOrders
    prompts: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.request.orders):
            raise ValueError("one prompt per order is needed")

    @cached_property
    def natural_lengths(self) -> tuple[int, ...]:
        """Each order's :func:`natural_samples` (samples)."""
        return tuple(natural_samples(order, prompt)
                     for order, prompt in zip(self.request.orders, self.prompts, strict=True))

    @cached_property
    def loop_samples(self) -> int:
        """How long one loop of the orders lasts when the caller presses nothing (samples)."""
        return sum(order_samples_without_keys(order, prompt)
                   for order, prompt in zip(self.request.orders, self.prompts, strict=True))

    @property
    def samples_without_keys(self) -> int:
        """How long the whole request lasts when the caller presses nothing (samples, all loops)."""
        return self.loop_samples * self.request.loops


@dataclass(frozen=True)
class Segment:
    """A stretch of one order: a play of its prompt (``audio``) or a gap of silence (``audio`` is None)."""

    order_index: int
    repetition: int
    length_samples: int
    audio: np.ndarray | None = None

    @property
    def is_gap(self) -> bool:
        """True for silence between plays."""
        return self.audio is None


def _segment_from(order: Order, prompt: np.ndarray, order_index: int, repetition: int, gap: bool) -> Segment | None:
    """The first segment of ``order`` at or after the play (``gap`` False) or gap of ``repetition``."""
    gap_after_last = order.collect is not None
    while repetition < order.plays:  # at most two turns: a repetition without play or gap is the last one
        if not gap and len(prompt):
            return Segment(order_index, repetition, len(prompt), prompt)
        if order.gap_samples and (repetition < order.plays - 1 or gap_after_last):
            return Segment(order_index, repetition, order.gap_samples)
        if not len(prompt):  # no play, and no gap from here to the last repetition
            return None
        repetition, gap = repetition + 1, False
    return None


def next_segment(order: Order, prompt: np.ndarray, order_index: int, after: Segment | None) -> Segment | None:
    """The play or gap of ``order`` that follows ``after`` (None: the first one); None after the last."""
    if after is None:
        return _segment_from(order, prompt, order_index, 0, False)
    if after.is_gap:
        return _segment_from(order, prompt, order_index, after.repetition + 1, False)
    return _segment_from(order, prompt, order_index, after.repetition, True)


def order_segments(order: Order, prompt: np.ndarray, order_index: int) -> list[Segment]:
    """Every play and gap of one order, without the getkey order's open-ended wait (for tests: O(plays))."""
    segments: list[Segment] = []
    segment = next_segment(order, prompt, order_index, None)
    while segment is not None:
        segments.append(segment)
        segment = next_segment(order, prompt, order_index, segment)
    return segments


def natural_samples(order: Order, prompt: np.ndarray) -> int:
    """Length of an order's plays and gaps (for the getkey order: the gap after every play included)."""
    gaps = order.plays if order.collect is not None else order.plays - 1
    return order.plays * len(prompt) + gaps * order.gap_samples


def order_samples_without_keys(order: Order, prompt: np.ndarray) -> int:
    """How long an order lasts when the caller presses nothing (samples)."""
    if order.collect is not None and order.collect.total_samples:
        return order.collect.total_samples
    return natural_samples(order, prompt)


def request_samples_without_keys(program: Program) -> int:
    """How long the whole request lasts when the caller presses nothing (samples, all loops)."""
    return program.samples_without_keys


def order_start_without_keys(program: Program, loop: int, order_index: int) -> int:
    """The sample where order ``order_index`` of loop ``loop`` starts when the caller presses nothing."""
    before = sum(order_samples_without_keys(order, prompt) for order, prompt in
                 zip(program.request.orders[:order_index], program.prompts[:order_index], strict=True))
    return loop * program.loop_samples + before

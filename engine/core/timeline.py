"""The timeline of a request: which audio plays when, in samples. Pure functions over plain arrays.

An order is played ``plays`` times with ``gap_samples`` of silence between plays (none after the last). The
getkey order is followed by the gap after every play, the last one included, and then lasts exactly as long
as collection stays open (see :mod:`engine.core.collector`); without keys that is ``total_samples`` when set, else
the end of its last gap.
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
    def segments(self) -> tuple[tuple[Segment, ...], ...]:
        """Each order's plays and gaps (:func:`order_segments`), built once per program and shared by its players."""
        return tuple(tuple(order_segments(order, prompt, index))
                     for index, (order, prompt) in enumerate(zip(self.request.orders, self.prompts, strict=True)))

    @cached_property
    def natural_lengths(self) -> tuple[int, ...]:
        """Each order's :func:`natural_samples` (samples)."""
        return tuple(natural_samples(order, prompt)
                     for order, prompt in zip(self.request.orders, self.prompts, strict=True))


@dataclass(frozen=True)
class Segment:
    """A stretch of one order: a play of its prompt (``audio``) or a gap of silence (``audio`` is None)."""

    order_index: int
    repetition: int
    length: int
    audio: np.ndarray | None = None

    @property
    def is_gap(self) -> bool:
        """True for silence between plays."""
        return self.audio is None


def order_segments(order: Order, prompt: np.ndarray, order_index: int) -> list[Segment]:
    """The plays and gaps of one order, without the getkey order's open-ended wait."""
    segments: list[Segment] = []
    gap_after_last = order.collect is not None
    for repetition in range(order.plays):
        if len(prompt):
            segments.append(Segment(order_index, repetition, len(prompt), prompt))
        last = repetition == order.plays - 1
        if order.gap_samples and (not last or gap_after_last):
            segments.append(Segment(order_index, repetition, order.gap_samples))
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
    one_loop = sum(
        order_samples_without_keys(order, prompt)
        for order, prompt in zip(program.request.orders, program.prompts, strict=True)
    )
    return one_loop * program.request.loops


def order_starts_without_keys(program: Program) -> list[list[int]]:
    """``starts[loop][order]``: the sample where each order starts when the caller presses nothing."""
    starts: list[list[int]] = []
    position = 0
    for _ in range(program.request.loops):
        row = []
        for order, prompt in zip(program.request.orders, program.prompts, strict=True):
            row.append(position)
            position += order_samples_without_keys(order, prompt)
        starts.append(row)
    return starts

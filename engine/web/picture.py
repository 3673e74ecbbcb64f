"""A call drawn on one time axis (matplotlib, the ``plot`` extra): what was played, the caller, and what happened.

Three rows share the time axis (seconds from the call's start): the played waveform with each order's plays
and gaps as labelled spans and the loops; the key collection window with its timers (``totalTime`` deadline,
``spaceTime`` deadline after each key); the caller's waveform with each key where the detector found it (from
its onset to its decision). Every event is a vertical line across the rows, labelled.

The spans are the request's timeline from :mod:`engine.core.timeline`, cut where the request ended (its
``multrpt``) and, for the getkey order, where the first key was decided (a key cuts the prompt).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.timeline import Program, next_segment, order_samples_without_keys
from engine.dtmf.channel import detect_keys
from engine.dtmf.detector import KeyEvent
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME

#: A waveform is drawn as at most 2 × 3000 points (its envelope beyond 12,000 samples: 1.5 s).
WAVE_COLUMNS = 3000
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f")


@dataclass
class CallPicture:
    """What to draw: both directions of audio, the requests and the events of one call.

    ``played``/``heard``: int16; ``requests``: ``(start_sample, program)``; ``events``: ``(at_sample, body)``, samples
    from the call's start. ``length_samples``: the time axis at least (default 0: as long as the audio).
    """

    played: np.ndarray
    heard: np.ndarray
    requests: list[tuple[int, Program]] = field(default_factory=list)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    title: str = ""
    length_samples: int = 0


@dataclass(frozen=True)
class Span:
    """A labelled stretch ``[start, end)`` in samples; ``kind``: ``play``, ``gap`` or ``collect``."""

    start: int
    end: int
    label: str
    kind: str
    order_index: int = 0


def _ends(events: list[tuple[int, dict[str, Any]]], start: int) -> tuple[int | None, int | None]:
    """The first ``ivrreportdtmf`` and ``multrpt`` sample at or after ``start`` (None: none)."""
    keys_end = next((at for at, body in events if at >= start and body.get("event") == "ivrreportdtmf"), None)
    request_end = next((at for at, body in events if at >= start and body.get("event") == "multrpt"), None)
    return keys_end, request_end


def request_spans(start: int, program: Program, events: list[tuple[int, dict[str, Any]]],
                  keys: list[KeyEvent]) -> tuple[list[Span], list[int], list[tuple[int, str]]]:
    """The spans of one request, its loop starts, and its timers ``(sample, label)``."""
    keys_end, request_end = _ends(events, start)
    stop = request_end if request_end is not None else start + sum(
        order_samples_without_keys(o, p) for o, p in zip(program.request.orders, program.prompts, strict=True)
    ) * program.request.loops
    spans: list[Span] = []
    loops: list[int] = []
    timers: list[tuple[int, str]] = []
    position = start
    for _ in range(program.request.loops):
        if position >= stop:
            break
        loops.append(position)
        for index, order in enumerate(program.request.orders):
            order_start = position
            length = order_samples_without_keys(order, program.prompts[index])
            cut = end_of_order = min(order_start + length, stop)
            if order.collect is not None:
                if keys_end is not None and order_start < keys_end <= order_start + length:  # collection ended
                    end_of_order = min(keys_end, stop)
                first_key = next((k.detected_sample for k in keys if k.detected_sample > order_start), None)
                cut = min(end_of_order, first_key) if first_key is not None else end_of_order
                spans.append(Span(order_start, end_of_order, f"collect (order {index})", "collect", index))
                armed: list[tuple[int, str]] = []
                if order.collect.total_samples:
                    armed.append((order_start + order.collect.total_samples, "totalTime"))
                if order.collect.inter_key_samples:
                    armed += [(k.detected_sample + order.collect.inter_key_samples, "spaceTime")
                              for k in keys if order_start < k.detected_sample < end_of_order]
                # a timer is drawn where it ran out, or as a deadline while collection was still open
                timers += [(at, label) for at, label in armed if at <= end_of_order + SAMPLES_PER_FRAME]
            segment = next_segment(order, program.prompts[index], index, None)
            while segment is not None and position < cut:  # lazily: a playTime of 2**31-1 draws what shows
                seg_end = min(position + segment.length_samples, cut)
                label = f"gap {index}.{segment.repetition + 1}" if segment.is_gap else \
                    f"order {index} play {segment.repetition + 1}"
                spans.append(Span(position, seg_end, label, "gap" if segment.is_gap else "play", index))
                position += segment.length_samples
                segment = next_segment(order, program.prompts[index], index, segment)
            position = end_of_order
            if position >= stop:
                break
    return spans, loops, timers


def events_by_request(events: list[tuple[int, dict[str, Any]]], count: int) -> list[list[tuple[int, dict[str, Any]]]]:
    """``events`` shared out among ``count`` requests that ran one after another: each up to its own ``multrpt``.

    A request's ``multrpt`` may fall on the next one's start sample; the order of the events says whose it is.
    """
    shares: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in range(count)]
    index = 0
    for at, body in events:
        if index >= count:
            break
        shares[index].append((at, body))
        if body.get("event") == "multrpt":
            index += 1
    return shares


def waveform_points(audio: np.ndarray, columns: int = WAVE_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """The line that draws ``audio``: (sample positions, values); beyond ``4 * columns`` samples its envelope.

    The envelope is each of ``columns`` equal stretches' minimum and maximum in turn (a line through them fills
    what the samples would), so a picture's cost does not grow with the call's length.
    """
    if len(audio) <= 4 * columns:
        return np.arange(len(audio)), np.asarray(audio, dtype=np.float64)
    edges = np.linspace(0, len(audio), columns + 1).astype(np.int64)
    low = np.minimum.reduceat(audio, edges[:-1]).astype(np.float64)
    high = np.maximum.reduceat(audio, edges[:-1]).astype(np.float64)
    middle = (edges[:-1] + edges[1:]) / 2
    return np.repeat(middle, 2), np.column_stack([low, high]).ravel()


def _event_label(body: dict[str, Any]) -> str:
    details = [str(body[k]) for k in ("dtmfCode", "endReason", "result") if body.get(k) not in (None, "")]
    return " ".join([str(body.get("event", "?")), *details])


def draw(picture: CallPicture, out: str | Path | io.BytesIO) -> None:
    """Draw ``picture`` to ``out`` (a PNG file path or a binary buffer)."""
    from matplotlib.figure import Figure

    rate = SAMPLE_RATE_HZ
    keys = detect_keys(picture.heard) if len(picture.heard) else []
    figure = Figure(figsize=(14, 7.5), dpi=100)
    figure.subplots_adjust(left=0.06, right=0.98, top=0.92, bottom=0.12, hspace=0.25)
    wave, collect, caller = figure.subplots(3, 1, sharex=True, height_ratios=[3, 1.2, 2])
    duration = max(len(picture.played), len(picture.heard), picture.length_samples, 1) / rate
    for axis, audio, name in ((wave, picture.played, "played"), (caller, picture.heard, "caller")):
        t, y = waveform_points(audio)
        axis.plot(t / rate, y / 32768.0, linewidth=0.4, color="#333333")
        axis.set_ylim(-1.05, 1.05)
        axis.set_ylabel(name)
    for (start, program), events in zip(picture.requests, events_by_request(picture.events, len(picture.requests)),
                                        strict=True):
        spans, loops, timers = request_spans(start, program, events, keys)
        for span in spans:
            colour = _COLOURS[span.order_index % len(_COLOURS)]
            if span.kind == "collect":
                collect.axvspan(span.start / rate, span.end / rate, ymin=0.35, ymax=0.75, color=colour, alpha=0.5)
                collect.text(span.start / rate, 0.8, span.label, fontsize=8, va="bottom")
                continue
            alpha = 0.35 if span.kind == "play" else 0.1
            wave.axvspan(span.start / rate, span.end / rate, color=colour, alpha=alpha, linewidth=0)
            if (span.end - span.start) > 0.05 * duration * rate:  # labels only where they fit
                wave.text((span.start + span.end) / 2 / rate, 0.93 if span.kind == "play" else -0.95, span.label,
                          fontsize=7, ha="center", va="top" if span.kind == "play" else "bottom", clip_on=True)
        for number, at in enumerate(loops, 1):
            wave.axvline(at / rate, color="black", linestyle="--", linewidth=1)
            wave.text(at / rate, 1.02, f" loop {number}", fontsize=8, va="bottom", transform=wave.get_xaxis_transform())
        for at, label in timers:
            collect.axvline(at / rate, color="#e15759", linestyle=":" if label == "spaceTime" else "-", linewidth=1.2)
            near_end = at / rate > 0.9 * duration  # a label at the right edge goes to the line's left
            collect.text(at / rate, 0.1, f"{label} " if near_end else f" {label}", fontsize=7, color="#e15759",
                         ha="right" if near_end else "left")
    for key in keys:
        caller.axvspan(key.start_sample / rate, key.detected_sample / rate, color="#e15759", alpha=0.3)
        caller.text(key.detected_sample / rate, 0.85, f" key {key.key}", fontsize=9, color="#e15759", weight="bold")
    legend = []
    for number, (at, body) in enumerate(picture.events, 1):
        for axis in (wave, collect, caller):
            axis.axvline(at / rate, color="#59a14f", linewidth=1.2)
        right = at / rate > 0.8 * duration
        caller.text(at / rate, -0.9 + 0.25 * ((number - 1) % 3), f" E{number} " if not right else f"E{number} ",
                    fontsize=9, color="#2b6a2b", weight="bold", ha="right" if right else "left")
        legend.append(f"E{number} at {at / rate:.3f} s: {_event_label(body)}")
    if legend:
        figure.text(0.01, 0.01, "    ".join(legend), fontsize=9, color="#2b6a2b")
    collect.set_ylim(0, 1)
    collect.set_yticks([])
    collect.set_ylabel("keys")
    caller.set_xlabel("seconds from the call's start")
    caller.set_xlim(0, duration * 1.01)
    if picture.title:
        figure.suptitle(picture.title, fontsize=11)
    figure.savefig(out, format="png")


def draw_png(picture: CallPicture) -> bytes:
    """``picture`` as PNG bytes."""
    buffer = io.BytesIO()
    draw(picture, buffer)
    return buffer.getvalue()

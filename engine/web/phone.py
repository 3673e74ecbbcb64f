"""A ``browser`` call: the page is the phone. Frames, status and events go to the page; its trace is kept.

Threads. The media thread calls :meth:`BrowserPhone.write`, the caller's ``read``, :meth:`BrowserPhone.attach` and
:meth:`BrowserPhone.close`; it never waits on the page. A page attaches from the server's event loop
(:meth:`BrowserPhone.open_page`) and gets an :class:`asyncio.Queue` of outgoing messages, filled with
``loop.call_soon_threadsafe``: ``bytes`` (a binary frame, :func:`frame_message`), ``dict`` (a JSON message) and
finally ``None`` (the call ended). A page that does not keep up loses frames beyond :data:`PAGE_QUEUE_FRAMES`
(counted in ``dropped_frames``), never the media thread's time.

JSON messages: ``{"type": "request", "orders": [...], "loops": n}`` when a request starts; ``{"type":
"status", ...}`` every :data:`STATUS_EVERY_FRAMES` frames (what plays, collection, the time to the deadline);
``{"type": "event", "at": seconds, "event": {...}}`` for each event as it is produced.

The call is recorded to ``<recordings>/<app>/browser-<callId>.wav`` (played on channel 1, the caller on channel
2; opened by :func:`engine.server.vault.open_recording`: 0600 in the application's 0700 folder); the calls page
(:mod:`engine.web.call_book`) lists it and draws the call's picture from it, as for every other call.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.core.orders import PlayKind
from engine.core.reports import PlayerEvent
from engine.core.timeline import Program
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, samples_to_seconds
from engine.media.sinks import WavSink
from engine.server.vault import app_folder_name, open_recording
from engine.web.call_book import trace_body
from engine.web.caller import BrowserCaller

if TYPE_CHECKING:
    from engine.media.call import Call

log = logging.getLogger(__name__)

#: Frames queued for a page at most (1 s); beyond, frames for that page are dropped.
PAGE_QUEUE_FRAMES = 50
#: A status message every 5 frames (100 ms).
STATUS_EVERY_FRAMES = 5
#: A binary frame: sequence number (uint32 LE) then 160 int16 LE samples.
FRAME_HEADER = struct.Struct("<I")


def frame_message(seq: int, frame: np.ndarray) -> bytes:
    """The binary WebSocket message of frame ``seq``: its number, then its samples (int16 little-endian)."""
    return FRAME_HEADER.pack(seq & 0xFFFFFFFF) + frame.astype("<i2", copy=False).tobytes()


def describe_orders(program: Program) -> list[dict[str, Any]]:
    """The orders of ``program`` for the page: what each plays (text cut at 80 characters), plays, getkey."""
    return [{"index": i, "kind": "file" if order.kind is PlayKind.FILE else "speech", "source": order.source[:80],
             "plays": order.plays, "gapMs": order.gap_samples * 1000 // SAMPLE_RATE_HZ,
             "getkey": order.collect is not None}
            for i, order in enumerate(program.request.orders)]


class BrowserPhone:
    """The sink of a ``browser`` call and its link to the page (at most one page at a time).

    ``recordings``: the recordings folder (the call's WAV goes into its application's folder there);
    ``recording``: its path inside that folder once the call ticks. ``on_finished(phone)``: called once the call
    ended. ``clock()``: seconds, stamps the frames written (for latency probes; default: never stamped).
    """

    def __init__(self, app_id: str, recordings: Path, on_finished: Callable[[BrowserPhone], None] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.app_id = app_id
        self.call_id = ""
        self.recordings = recordings
        self.caller = BrowserCaller(self._request_started)
        self.on_finished = on_finished
        self.clock = clock
        self.written_at: dict[int, float] = {}  # frame seq → clock(), the last few hundred (clock given)
        self.frames = 0
        self.dropped_frames = 0
        self.ended = False
        self.recording = ""
        self._call: Call | None = None
        self._wav: WavSink | None = None
        self._page: tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]] | None = None

    # -- media thread ------------------------------------------------------------------------------------

    def attach(self, call: Call) -> None:
        """The call starts ticking: open its recording and observe its events."""
        self._call = call
        self.call_id = call.call_id
        name = f"browser-{call.call_id}.wav"
        self._wav = WavSink(open_recording(self.recordings, self.app_id, name))
        self.recording = f"{app_folder_name(self.app_id)}/{name}"
        forward = call.on_event

        def on_event(c: Call, event: PlayerEvent, at_sample: int) -> None:
            forward(c, event, at_sample)
            self._event(event, at_sample)

        call.on_event = on_event

    def _request_started(self) -> None:
        call = self._call
        if call is None or call.player is None:
            return
        program = call.player.program
        self._send({"type": "request", "orders": describe_orders(program), "loops": program.request.loops,
                    "at": samples_to_seconds(call.request_start_sample)})

    def _event(self, event: PlayerEvent, at_sample: int) -> None:
        body = trace_body(event, self.app_id, self.call_id)  # the delivered event has the real timeStamp
        self._send({"type": "event", "at": samples_to_seconds(at_sample), "event": body})

    def write(self, played: np.ndarray, heard: np.ndarray) -> None:
        """One frame of each direction: recorded, and sent to the page (if one is attached)."""
        seq = self.frames
        self.frames += 1
        if self._wav is not None:
            self._wav.write(played, heard)
        if self.clock is not None:
            self.written_at[seq] = self.clock()
            self.written_at.pop(seq - 500, None)
        page = self._page
        if page is None:
            return
        loop, queue = page
        if queue.qsize() >= PAGE_QUEUE_FRAMES:
            self.dropped_frames += 1
        else:
            _post(loop, queue, frame_message(seq, played))
        if seq % STATUS_EVERY_FRAMES == 0:
            _post(loop, queue, self._status())

    def _status(self) -> dict[str, Any]:
        call = self._call
        player = call.player if call is not None else None
        status: dict[str, Any] = {"type": "status", "t": samples_to_seconds(self.frames * SAMPLES_PER_FRAME),
                                  "playing": None, "dropped": self.dropped_frames}
        if player is not None:
            now = player.status()
            to_deadline = now.samples_to_deadline
            status["playing"] = {
                "loop": now.loop, "order": now.order_index, "repetition": now.repetition, "inGap": now.in_gap,
                "collecting": now.collecting, "digits": now.digits,
                "deadlineMs": None if to_deadline is None else to_deadline * 1000 // SAMPLE_RATE_HZ}
        return status

    def close(self) -> None:
        """The call ended: finish the recording, tell the page, tell the registry."""
        if self.ended:
            return
        self.ended = True
        if self._wav is not None:
            self._wav.close()
        self._send({"type": "ended"})
        self._send(None)
        if self.on_finished is not None:
            try:
                self.on_finished(self)
            except Exception:
                log.exception("browser call %s: on_finished failed", self.call_id)

    # -- server's event loop -------------------------------------------------------------------------------

    def open_page(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Any] | None:
        """Attach a page: its queue of outgoing messages; None when a page is attached already or the call ended."""
        if self._page is not None or self.ended:
            return None
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._page = (loop, queue)
        return queue

    def close_page(self) -> None:
        """The page went away (the call goes on; another page may attach)."""
        self._page = None

    def _send(self, message: Any) -> None:
        page = self._page
        if page is not None:
            _post(*page, message)


def _post(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], message: Any) -> None:
    try:
        loop.call_soon_threadsafe(queue.put_nowait, message)
    except RuntimeError:  # the server's loop closed: nobody to tell
        pass

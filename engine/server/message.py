"""Voicemail (``message``): the caller is heard after the prompt; silence ends it; ``messagerpt`` reports it.

The request is one order: the prompt, then key collection until ``key2Stop`` or ``maxTime`` (counted from the
prompt's start, as every getkey order's ``totalTime``). Besides, from the prompt's end the caller's audio is
watched (:class:`~engine.audio.silence.SilenceWatch`, on the media thread through
:meth:`~engine.media.loop.MediaLoop.listen`): after the application's ``silenceSeconds`` below its
``silenceLevel`` the request is stopped (``multrpt`` ``stopped``) and ``messagerpt`` says ``endReason``
``silence``. Otherwise ``endReason`` is ``key2Stop``, ``maxTime``, ``stopped`` (``stoPlay``), ``hangup`` or
``error``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from engine.audio.silence import SilenceWatch
from engine.core.player import RequestReport, Result
from engine.core.timeline import Program
from engine.format import samples_to_seconds
from engine.media.call import Call
from engine.wire.call_events import CallInfo
from engine.wire.events import vendor_timestamp

SILENCE = "silence"


class SilenceStop:
    """A listener that stops ``program``'s request once the caller was quiet for ``silence`` after its prompt.

    Used where the call plays: the server's media thread, or the call's media worker (``on_silence`` then tells
    the server). ``silence``: None watches nothing.
    """

    def __init__(self, program: Program, silence: SilenceWatch | None,
                 on_silence: Callable[[], None] = lambda: None) -> None:
        self.program = program
        self.prompt_samples = len(program.prompts[0])
        self.silence = silence
        self.on_silence = on_silence
        self.started = False
        self.silenced = False

    def hear(self, frame: np.ndarray, call: Call) -> bool:
        """The caller's frame (media thread): stops the request after the silence span; False: stop listening."""
        player = call.player
        if player is None or player.program is not self.program:
            return not self.started  # before the message starts, listen on; after it, no more
        self.started = True
        if self.silence is None or player.position_samples <= self.prompt_samples:
            return True  # the prompt plays: the message has not begun
        if not self.silence.feed(frame):
            return True
        self.silenced = True
        self.on_silence()
        call.stop()
        return False


class Message:
    """One ``message`` request: its program, the watch over the caller's silence (None: off), its report."""

    def __init__(self, program: Program, info: CallInfo | None, data: str, silence_samples: int,
                 silence_dbm0: float) -> None:
        self.program = program
        self.info = info
        self.data = data
        #: (span samples, threshold dBm0) of the silence that ends the message (None: off), for a media worker.
        self.silence = (silence_samples, silence_dbm0) if silence_samples > 0 else None
        self.watch = SilenceStop(program, SilenceWatch(silence_samples, silence_dbm0) if self.silence else None)
        self.prompt_samples = self.watch.prompt_samples
        self.hear = self.watch.hear

    @property
    def silenced(self) -> bool:
        """True once the caller's silence ended the message."""
        return self.watch.silenced

    @silenced.setter
    def silenced(self, value: bool) -> None:  # the call's media worker heard the silence
        self.watch.silenced = value

    def end_reason(self, report: RequestReport) -> str:
        """Why the message ended."""
        if report.result is Result.STOPPED:
            return SILENCE if self.silenced else "stopped"
        if report.result is Result.COMPLETE:
            collect = self.program.request.orders[0].collect
            total = collect.total_samples if collect is not None else 0
            return "maxTime" if total and report.at_sample >= total else "key2Stop"
        return report.result.value

    def report(self, call: Call, report: RequestReport, moment: datetime) -> dict[str, Any]:
        """``messagerpt``: the recording, where the message lies in it, its result and why it ended."""
        start = call.request_start_sample + min(self.prompt_samples, report.at_sample)
        end = call.request_start_sample + report.at_sample
        return {"event": "messagerpt", "appId": call.app_id, "callId": call.call_id,
                "fileName": self.info.recording if self.info is not None else "", "result": report.result.value,
                "endReason": self.end_reason(report), "startMs": round(samples_to_seconds(start) * 1000),
                "endMs": round(samples_to_seconds(end) * 1000), "data": self.data,
                "timeStamp": vendor_timestamp(moment)}

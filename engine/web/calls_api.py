"""The calls page's API: an application's live calls, its finished calls with their recordings and pictures.

* ``GET /web/calls?appId=&secret=``: ``live`` (the first :data:`LIVE_LISTED`: ``callId``, ``kind``, ``events``;
  ``liveCount``: how many there are) and ``finished`` (the newest first: ``callId``, ``kind``, ``called``,
  ``seconds``, ``events``, ``recordings``, ``picture``) of every server call (:mod:`engine.web.call_book`):
  ``wav:`` calls (their WAV is the recording), SIP calls (recorded with ``[sip] record``), ``browser`` calls, and
  each ``message`` of a call (``messagerpt``'s span of the caller's channel) as a recording of its own. A SIP
  call's entry, live or finished, has ``rtp`` too (:func:`rtp_body`): a live call's asked of the media that
  carries it when the list is asked for (:mod:`engine.server.rtp_queries`), a finished call's its final figures.
* ``GET /web/calls/{callId}/recording.wav``: the call's recording (stereo: played, caller);
  ``/web/calls/{callId}/message/{n}.wav``: message ``n`` (1, 2, ...; the caller's channel from ``startMs`` to
  ``endMs``, mono); ``/web/calls/{callId}/picture.png``: the call drawn as ``render --plot`` draws a request
  (:mod:`engine.web.picture`), from its recording's first :data:`PICTURE_MAX_SAMPLES` (no recording: the spans
  and events on a silent axis). One picture is drawn at a time, on the engine's pool, and kept with the call.

Only finished calls of the asking application answer (another application's call is unknown: 404). What the
page receives names files by their own name only, never a folder of this machine. A recording is opened only
inside the recordings folder, never through a symbolic link.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response

from engine.format import SAMPLE_DTYPE, SAMPLE_RATE_HZ, ms_to_samples, samples_to_ms, samples_to_seconds
from engine.net import g711
from engine.server.rtp_queries import live_rtp_stats
from engine.web.call_book import CallBook, CallRecord

if TYPE_CHECKING:
    from engine.server.app import Engine

#: Live calls listed at most (with their events): 100.
LIVE_LISTED = 100
#: A picture draws at most the first 5 minutes of a call (2.4 M samples a direction).
PICTURE_MAX_SAMPLES = 5 * 60 * SAMPLE_RATE_HZ
_NOT_FOUND = "callId: no finished call of this application"


def rtp_body(stats: dict[str, Any] | None) -> dict[str, Any]:
    """A SIP call's ``rtp`` object (the page's camelCase) from its session's stats (snake_case, jitter in samples).

    ``available`` false (and nothing else): the media gave no figures (not carried yet, or no answer in time).
    ``packetsLost`` and ``jitterMs``: what this end received; ``remotePacketsLost`` and ``remoteJitterMs``: the
    remote's view from its RTCP receiver reports (null until it reports); ``lateFrames``, ``duplicateFrames``,
    ``concealedFrames``: the jitter buffer's; ``events``: RFC 4733 keys.
    """
    if not stats:
        return {"available": False}
    remote_jitter = stats["remote_jitter_samples"]
    buffer = stats["buffer"]
    payload_type = int(stats["payload_type"])
    return {"available": True, "codec": g711.NAMES.get(payload_type, str(payload_type)),
            "packetsSent": stats["sent"], "packetsReceived": stats["received"], "packetsLost": stats["lost"],
            "jitterMs": samples_to_ms(stats["jitter_samples"]), "remotePacketsLost": stats["remote_lost"],
            "remoteJitterMs": samples_to_ms(remote_jitter) if remote_jitter is not None else None,
            "lateFrames": buffer["late"], "duplicateFrames": buffer["duplicate"],
            "concealedFrames": buffer["concealed"], "events": stats["events"]}


def recording_path(root: Path, relative: str) -> Path | None:
    """``relative`` inside ``root`` as a path, or None when it leaves ``root``, is a link, or is no file."""
    if not relative:
        return None
    base = root.resolve()
    path = base / relative
    try:
        inside = path.resolve(strict=True).is_relative_to(base)
    except OSError:
        return None
    if not inside or path.is_symlink() or path.parent.is_symlink() or not path.is_file():
        return None
    return path


def read_recording(path: Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[start, stop)`` of a recording (samples; ``stop`` None: to its end): (played, caller), int16.

    A mono file's caller is silence. Opened without following a symbolic link.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file, sf.SoundFile(file) as wav:
        wav.seek(min(start, wav.frames))
        audio = wav.read(-1 if stop is None else max(0, stop - start), dtype="int16", always_2d=True)
    heard = audio[:, 1] if audio.shape[1] > 1 else np.zeros(len(audio), SAMPLE_DTYPE)
    return np.ascontiguousarray(audio[:, 0]), np.ascontiguousarray(heard)


def messages(events: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """The messages of a call's delivered events: ``(start_sample, end_sample, endReason)``, in order."""
    return [(ms_to_samples(e["startMs"]), ms_to_samples(e["endMs"]), str(e.get("endReason")))
            for e in events if e.get("event") == "messagerpt" and isinstance(e.get("startMs"), int)
            and isinstance(e.get("endMs"), int) and e.get("fileName")]


def finished_entry(record: CallRecord, events: list[dict[str, Any]], root: Path) -> dict[str, Any]:
    """What the page gets of a finished call (every URL relative to the server, every file by its name)."""
    base = f"/web/calls/{record.call_id}"
    recordings: list[dict[str, Any]] = []
    if recording_path(root, record.recording) is not None:
        name = Path(record.recording).name
        recordings.append({"label": "call (played, caller)", "url": f"{base}/recording.wav", "download": name,
                           "seconds": samples_to_seconds(record.samples)})
        stem = name.removesuffix(".wav")
        for number, (start, end, reason) in enumerate(messages(events), 1):
            recordings.append({"label": f"message {number} ({reason}, from {samples_to_seconds(start):.2f} s)",
                               "url": f"{base}/message/{number}.wav", "download": f"{stem}-message-{number}.wav",
                               "seconds": samples_to_seconds(end - start)})
    return {"callId": record.call_id, "kind": record.kind, "called": record.called,
            "seconds": samples_to_seconds(record.samples), "events": events, "recordings": recordings,
            "picture": f"{base}/picture.png", **({"rtp": rtp_body(record.rtp)} if record.rtp is not None else {})}


def draw_record(record: CallRecord, root: Path, delivered: list[dict[str, Any]] | None = None) -> bytes:
    """The picture of a finished call (PNG bytes): its recording's first :data:`PICTURE_MAX_SAMPLES`.

    ``delivered``: the call's delivered events; each ``messagerpt`` among them is drawn where its message ended.
    """
    from engine.web.picture import CallPicture, draw_png

    reports = [(end, {"event": "messagerpt", "endReason": reason}) for _start, end, reason in messages(delivered or [])]
    events = sorted(record.bodies() + reports, key=lambda event: event[0])  # stable: a report follows its multrpt
    length = min(record.samples, PICTURE_MAX_SAMPLES)
    path = recording_path(root, record.recording)
    played, heard = read_recording(path, 0, length) if path is not None else (np.zeros(0, SAMPLE_DTYPE),) * 2
    cut = "" if record.samples <= PICTURE_MAX_SAMPLES else f" (its first {PICTURE_MAX_SAMPLES // SAMPLE_RATE_HZ} s)"
    return draw_png(CallPicture(played, heard, record.requests, events, title=f"{record.kind} call "
                                f"{record.call_id}{cut}", length_samples=length))


def wav_bytes(audio: np.ndarray) -> bytes:
    """``audio`` (int16, mono) as an 8 kHz 16-bit WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE_HZ, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def mount_calls(app: FastAPI, engine: Engine, book: CallBook, allowed: Callable[[str, str], bool]) -> None:
    """Add ``GET /web/calls`` and a finished call's recording, messages and picture to ``app``."""
    root = Path(engine.endpoints.recordings)
    drawing = asyncio.Lock()

    def events_of(call_id: str) -> list[dict[str, Any]]:
        return engine.delivery.events(call_id) or []

    @app.get("/web/calls", include_in_schema=False)
    async def calls(appId: str = Query(""), secret: str = Query("")) -> Response:  # noqa: N803
        if not allowed(appId, secret):
            return JSONResponse({"error": "appId: unknown application or wrong secret"}, status_code=403)
        live_ids = engine.board.live_calls(appId)
        listed = live_ids[:LIVE_LISTED]
        sessions = book.sessions(listed)
        figures = await asyncio.to_thread(live_rtp_stats, engine.board, sessions) if sessions else {}
        live = [{"callId": cid, "kind": book.kind_of(cid), "events": events_of(cid),
                 **({"rtp": rtp_body(figures.get(cid))} if cid in sessions else {})} for cid in listed]
        finished = [finished_entry(record, events_of(record.call_id), root) for record in book.finished_calls(appId)]
        return JSONResponse({"live": live, "liveCount": len(live_ids), "finished": finished})

    def owned(app_id: str, secret: str, call_id: str) -> CallRecord | None:
        return book.finished_call(app_id, call_id) if allowed(app_id, secret) else None

    @app.get("/web/calls/{call_id}/recording.wav", include_in_schema=False)
    async def recording(call_id: str, appId: str = Query(""), secret: str = Query("")) -> Response:  # noqa: N803
        record = owned(appId, secret, call_id)
        path = recording_path(root, record.recording) if record is not None else None
        if record is None or path is None:
            return JSONResponse({"error": f"{_NOT_FOUND} with a recording"}, status_code=404)
        return FileResponse(path, media_type="audio/wav", filename=path.name)

    @app.get("/web/calls/{call_id}/message/{number}.wav", include_in_schema=False)
    async def message(call_id: str, number: int, appId: str = Query(""),  # noqa: N803
                      secret: str = Query("")) -> Response:
        record = owned(appId, secret, call_id)
        path = recording_path(root, record.recording) if record is not None else None
        spans = messages(events_of(call_id)) if path is not None else []
        if path is None or not 1 <= number <= len(spans):
            return JSONResponse({"error": f"{_NOT_FOUND} with message {number}"}, status_code=404)
        start, end, _reason = spans[number - 1]
        heard = await asyncio.get_running_loop().run_in_executor(engine.pool, read_recording, path, start, end)
        return Response(wav_bytes(heard[1]), media_type="audio/wav")

    @app.get("/web/calls/{call_id}/picture.png", include_in_schema=False)
    async def picture(call_id: str, appId: str = Query(""), secret: str = Query("")) -> Response:  # noqa: N803
        record = owned(appId, secret, call_id)
        if record is None:
            return JSONResponse({"error": _NOT_FOUND}, status_code=404)
        async with drawing:  # one drawing at a time; a call's picture is drawn once
            if record.png is None:
                record.png = await asyncio.get_running_loop().run_in_executor(engine.pool, draw_record, record, root,
                                                                              events_of(call_id))
        return Response(record.png, media_type="image/png")

"""The phone at the far end of a call: endpoints named by ``outCall``'s ``called``, made by factories per scheme.

Built in:

* ``wav:NAME`` records the call to ``<recordings>/<app>/NAME.wav``, in the application's own folder
  (:func:`engine.server.vault.app_folder_name`; a routed phone number's recording too, see
  :mod:`engine.server.routes`) (8 kHz stereo: what the engine plays on channel 1, the caller's audio on
  channel 2). NAME is 1–100 characters of ``A-Z a-z 0-9 . _ -``, not starting with a dot; ``.wav`` is appended
  unless NAME ends with it. The file is created 0600 in 0700 folders by :func:`engine.server.vault.open_recording`
  (``O_EXCL | O_NOFOLLOW``): a NAME in use by a live call, an existing recording or a symlink at the name is
  refused (``108100`` naming ``called``); one application never writes into another's folder.
* ``null`` plays into nothing (load tests).

The caller's audio, for both: ``keys`` — a key script, ``"5@3.2,#@4.0"``, seconds from the moment each
multOrders request starts playing, as ``render --keys`` — or ``callerWav``, a file *inside the voice library*
(the same root and the same checks as ``playFlag`` 1; nothing outside it is ever read), whose audio runs from
the call's start. Neither: a silent caller. Both: ``108100``.

* ``speaker[:DEVICE]`` plays the call on this machine's speakers, with the terminal's keys (``speaker:mic``:
  the microphone) as the caller; without a sound device it answers ``108100`` ("speaker endpoint not
  available").

Other schemes come from :func:`register_endpoint`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.audio.caller import CallerAudio, make_caller
from engine.audio.library import VoiceLibrary
from engine.errors import EndpointError
from engine.media.call import CallerSource
from engine.media.sinks import LazySink, NullSink, Sink, WavSink
from engine.server.vault import app_folder_name, open_recording
from engine.wire.body import fields_of
from engine.wire.call_events import CallInfo
from engine.wire.request import MAX_DATA_CHARS, UNKNOWN_FIELDS, app_id_of, text_field

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
MAX_SCRIPT_CHARS = 10_000
OUT_CALL_FIELDS = ("appId", "called", "caller", "data", "keys", "callerWav", "timeout", "AiFlag")


@dataclass(frozen=True)
class OutCallSpec:
    """A checked ``outCall`` body."""

    app_id: str
    called: str
    caller: str = ""
    data: str = ""
    keys: str = ""
    caller_wav: str = ""
    timeout_s: int = 0


@dataclass(frozen=True)
class PortableMedia:
    """An endpoint's media as a media worker process rebuilds it: the caller's ``keys`` or ``caller_audio``.

    ``caller_audio``: the caller's samples (int16, the call's format; None: ``keys``, or a silent caller).
    """

    keys: str = ""
    caller_audio: np.ndarray | None = None
    #: The recording's file, opened and not yet written (``wav:``; None: the audio goes nowhere).
    recording: BinaryIO | None = None


def portable_media(spec: OutCallSpec, caller: CallerSource, recording: BinaryIO | None = None) -> PortableMedia:
    """The :class:`PortableMedia` of a caller made by :func:`caller_source` for ``spec``."""
    return PortableMedia(spec.keys, caller.samples if isinstance(caller, CallerAudio) else None, recording)


@dataclass
class Endpoint:
    """The far end of one call: the caller's audio, where the call's audio goes, and optional hooks.

    ``ended``: polled by the media thread (about twice a second); True hangs the call up. ``on_close``:
    called by the media thread once the call's sink is closed. ``recording``: the recording's path inside the
    recordings folder ("" when nothing is recorded). ``info``: what the call events say (set by the server).
    ``attach``: called by the media thread with the :class:`~engine.media.call.Call` when it starts ticking
    (an endpoint that shows the call live).
    """

    caller: CallerSource
    sink: Sink
    description: str
    ended: Callable[[], bool] | None = None
    on_close: Callable[[], None] | None = None
    attach: Callable[[Any], None] | None = None
    recording: str = ""
    info: CallInfo | None = None
    #: How a media worker process rebuilds this endpoint's media (None: it lives in this process).
    portable: PortableMedia | None = None
    #: Its place on a media worker (:class:`~engine.server.worker_pool.Placement`; set by the switchboard).
    placed: Any = None

    def discard(self) -> None:
        """Close an endpoint whose call was never created."""
        self.sink.close()
        if self.on_close is not None:
            self.on_close()


@dataclass
class EndpointContext:
    """What factories may use: the recordings folder, the voice library, the names of live recordings."""

    recordings: Path
    library: VoiceLibrary
    names_in_use: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


#: ``factory(rest, spec, context)``: ``rest`` is ``called`` after ``scheme:`` ("" without a colon).
EndpointFactory = Callable[[str, OutCallSpec, EndpointContext], Endpoint]


def caller_source(spec: OutCallSpec, context: EndpointContext) -> CallerSource:
    """The caller's audio the spec asks for: scripted keys, a file of the voice library, or silence."""
    return make_caller(spec.keys, spec.caller_wav or None,
                       load=lambda name: context.library.load(name, "callerWav"))


def wav_endpoint(rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
    """``wav:NAME``: record to ``<recordings>/<app>/NAME.wav`` (opened by :func:`open_recording`)."""
    if not _NAME.fullmatch(rest) or ".." in rest:
        raise EndpointError("called", f"wav:NAME needs NAME of 1-100 characters A-Z a-z 0-9 . _ - "
                                      f"(no path, not starting with a dot), got {rest!r}")
    file_name = rest if rest.lower().endswith(".wav") else rest + ".wav"
    name = f"{app_folder_name(spec.app_id)}/{file_name}"
    caller = caller_source(spec, context)
    with context.lock:
        if name in context.names_in_use:
            raise EndpointError("called", f"the recording {name!r} is in use by a live call")
        context.names_in_use.add(name)
    try:
        file = open_recording(context.recordings, spec.app_id, file_name)
    except BaseException:
        with context.lock:
            context.names_in_use.discard(name)
        raise

    def release() -> None:
        with context.lock:
            context.names_in_use.discard(name)

    return Endpoint(caller, LazySink(lambda: WavSink(file)), f"wav:{name}", on_close=release, recording=name,
                    portable=portable_media(spec, caller, file))


def null_endpoint(rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
    """``null``: the call's audio goes nowhere."""
    if rest:
        raise EndpointError("called", f"null takes no name, got {spec.called!r}")
    caller = caller_source(spec, context)
    return Endpoint(caller, NullSink(), "null", portable=portable_media(spec, caller))


def speaker_endpoint(rest: str, spec: OutCallSpec, context: EndpointContext) -> Endpoint:
    """``speaker[:DEVICE]``: the call on this machine's speakers, the terminal's keys as the caller.

    ``speaker:mic`` hears the microphone instead. No sound device here: ``108100`` naming ``called``.
    """
    from engine.local.speaker import speaker_endpoint as open_speaker  # sounddevice is imported only when asked for

    mic = rest == "mic"
    try:
        sink, caller = open_speaker(None if mic or not rest else rest, mic=mic)
    except Exception as exc:  # no sound device here: a request error, not an engine failure
        raise EndpointError("called", f"speaker endpoint not available ({exc})") from None
    return Endpoint(caller, sink, "speaker", ended=lambda: sink.failure is not None,
                    on_close=getattr(caller, "close", None))


_FACTORIES: dict[str, EndpointFactory] = {"wav": wav_endpoint, "null": null_endpoint, "speaker": speaker_endpoint}


def register_endpoint(scheme: str, factory: EndpointFactory) -> None:
    """Make ``called: scheme[:rest]`` create calls with ``factory`` (replaces a factory of that scheme)."""
    _FACTORIES[scheme] = factory


def is_endpoint(called: str) -> bool:
    """True when ``called`` names an endpoint of a registered scheme (``wav:x``, ``null``, ...), not a number."""
    return called.partition(":")[0] in _FACTORIES


def schemes() -> list[str]:
    """The registered endpoint schemes, sorted."""
    return sorted(_FACTORIES)


def make_endpoint(spec: OutCallSpec, context: EndpointContext, called: str | None = None) -> Endpoint:
    """The endpoint ``called`` (default ``spec.called``) names; :class:`EndpointError` naming ``called`` if none."""
    target = spec.called if called is None else called
    scheme, _, rest = target.partition(":")
    factory = _FACTORIES.get(scheme)
    if factory is None:
        raise EndpointError("called", f"unknown endpoint {target[:40]!r} (schemes: {', '.join(schemes())})")
    return factory(rest, spec, context)


def parse_out_call(body: Mapping[str, Any]) -> OutCallSpec:
    """A decoded ``outCall`` body → :class:`OutCallSpec` (``appId`` and ``called`` required strings).

    ``appId`` may be a JSON integer (its decimal string); ``caller`` a JSON integer too (a number);
    ``timeout``: seconds to answer, 1–3600 (the platform's 20–60 and more; default 0: the route decides);
    ``AiFlag`` and other fields are accepted and ignored.
    """
    body = fields_of(body).copy()
    fields: dict[str, str] = {"appId": app_id_of(body)}
    UNKNOWN_FIELDS.note(fields["appId"], "outCall", body, OUT_CALL_FIELDS)
    caller = body.get("caller")
    if isinstance(caller, int) and not isinstance(caller, bool) and caller >= 0:
        body["caller"] = str(caller)
    for name, required, limit in (("called", True, 300), ("caller", False, 200),
                                  ("data", False, MAX_DATA_CHARS), ("keys", False, MAX_SCRIPT_CHARS),
                                  ("callerWav", False, 1000)):
        fields[name] = text_field(body, name, limit, required, EndpointError)
    timeout = body.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | str)
                                or not str(timeout).isdigit() or not 1 <= int(str(timeout)[:6]) <= 3600):
        raise EndpointError("timeout", "must be whole seconds to answer, 1-3600")
    return OutCallSpec(fields["appId"], fields["called"].strip(), fields["caller"], fields["data"],
                       fields["keys"], fields["callerWav"], timeout_s=int(str(timeout)[:6]) if timeout else 0)

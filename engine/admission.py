"""From a request body to a program ready to play: :func:`admit` = check -> prepare -> limit, for every entry point.

Check: the envelope first (JSON object, ``appId``/``callId`` strings: ``108100``), then the application
(``108101``), then the orders and their files (``108100``). The server looks the call up (``108105``) between
the application and the orders. Prepare: the audio of every order (speech, files). Limit: how long the request
plays without keys — the longest it can play, computed without playing it — against the limit (``108100``
naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.audio.library import VoiceLibrary
from engine.config import Application, Config
from engine.core.orders import MultOrders, PlayKind
from engine.core.timeline import Program
from engine.errors import RequestError
from engine.format import SAMPLES_PER_FRAME, frames_for, samples_to_seconds
from engine.tts.synthesizer import SpeechSource, VoiceSettings
from engine.wire.request import decode_body, parse_mult_orders, read_ids


def check_request(
    body: bytes | str | Mapping[str, Any],
    config: Config,
    library: VoiceLibrary,
    parse: Callable[[Mapping[str, Any]], MultOrders] = parse_mult_orders,
    check_call: Callable[[str, str], None] | None = None,
) -> tuple[MultOrders, Application]:
    """Check a request body in the contract's order; raises the :class:`EngineError` of the first failure."""
    fields = decode_body(body) if isinstance(body, bytes | str) else body
    app_id, call_id = read_ids(fields)
    application = config.application(app_id)
    if check_call is not None:
        check_call(app_id, call_id)
    request = parse(fields)
    check_files(request, library)
    return request, application


def check_files(request: MultOrders, library: VoiceLibrary) -> None:
    """Refuse (``MediaError``, ``108100``) a request whose files are outside the library, missing or not audio."""
    for i, order in enumerate(request.orders):
        if order.kind is PlayKind.FILE:
            library.load(order.source, f"orders[{i}].voiceStr")


def prepare(request: MultOrders, library: VoiceLibrary, speaker: SpeechSource, voice: VoiceSettings) -> Program:
    """The request with the audio of every order: speech in ``voice``, files from ``library``."""
    prompts = []
    for i, order in enumerate(request.orders):
        if order.kind is PlayKind.FILE:
            prompts.append(library.load(order.source, f"orders[{i}].voiceStr"))
        else:
            prompts.append(speaker.synthesize(order.source, voice))
    return Program(request, tuple(prompts))


#: ``prepare(request, library, speaker, voice)``: the program of a checked request (default :func:`prepare`).
Preparer = Callable[[MultOrders, VoiceLibrary, SpeechSource, VoiceSettings], Program]


def program_seconds(program: Program) -> float:
    """How long ``program`` plays at most (without keys: keys only shorten it), in seconds of whole frames."""
    return samples_to_seconds(frames_for(program.samples_without_keys) * SAMPLES_PER_FRAME)


def limit(program: Program, max_seconds: float | None, limit_name: str = "max_seconds") -> Program:
    """``program``, unless it plays longer than ``max_seconds`` (None: no limit): ``108100`` naming the limit."""
    if max_seconds is not None:
        seconds = program_seconds(program)
        if seconds > max_seconds:
            raise RequestError("request", f"plays {seconds:.1f} s without keys, over {limit_name} {max_seconds:g}")
    return program


def admit(
    body: bytes | str | Mapping[str, Any],
    config: Config,
    library: VoiceLibrary,
    speaker: SpeechSource,
    *,
    parse: Callable[[Mapping[str, Any]], MultOrders] = parse_mult_orders,
    check_call: Callable[[str, str], None] | None = None,
    max_seconds: float | None = None,
    limit_name: str = "max_seconds",
    preparer: Preparer = prepare,
) -> Program:
    """Check ``body`` (:func:`check_request`), prepare its media, limit its playing time: the program to play.

    ``parse``: the body's parser (``multOrders``, or ``play``); ``check_call(app_id, call_id)``: the server's
    live-call check; ``max_seconds``/``limit_name``: the playing-time limit and how messages name it;
    ``preparer``: how the media is made (the server's fast path passes one that takes cached speech only).
    Raises the :class:`~engine.errors.EngineError` of the first failure.
    """
    request, application = check_request(body, config, library, parse, check_call)
    program = preparer(request, library, speaker, application.voice)
    return limit(program, max_seconds, limit_name)

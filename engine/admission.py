"""From a request body to a program ready to play: the order of checks every entry point shares, then its media.

The envelope first (JSON object, ``appId``/``callId`` strings: ``108100``), then the application
(``108101``), then the orders and their files (``108100``). The server looks the call up (``108105``) between
the application and the orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.audio.library import VoiceLibrary
from engine.config import Application, Config
from engine.core.orders import MultOrders, PlayKind
from engine.core.timeline import Program
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

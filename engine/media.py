"""Preparing a request's media: speech synthesized, files decoded, all in the call's format."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .library import VoiceLibrary
from .orders import MultOrders, PlayKind
from .speech import VoiceSettings
from .timeline import Program


class Speaker(Protocol):
    """Anything that turns text into 8 kHz mono int16 speech (the engine's :class:`Synthesizer`)."""

    def synthesize(self, text: str, settings: VoiceSettings = ...) -> np.ndarray: ...


def check_files(request: MultOrders, library: VoiceLibrary) -> None:
    """Refuse (``MediaError``, ``108100``) a request whose files are outside the library, missing or not audio."""
    for i, order in enumerate(request.orders):
        if order.kind is PlayKind.FILE:
            library.load(order.source, f"orders[{i}].voiceStr")


def prepare(request: MultOrders, library: VoiceLibrary, speaker: Speaker, voice: VoiceSettings) -> Program:
    """The request with the audio of every order: speech in ``voice``, files from ``library``."""
    prompts = []
    for i, order in enumerate(request.orders):
        if order.kind is PlayKind.FILE:
            prompts.append(library.load(order.source, f"orders[{i}].voiceStr"))
        else:
            prompts.append(speaker.synthesize(order.source, voice))
    return Program(request, tuple(prompts))

"""A live server for the pages' server side: two applications, the shipped voices, the fake speaker, in a thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from engine.config import Application, Config
from engine.server.app import ServerSettings, create_app
from engine.testing.alsa import APP, VOICES
from engine.testing.server import CALM_GUARD, FakeSpeaker, LiveServer

#: The second application (its calls are none of :data:`engine.testing.alsa.APP`'s business).
OTHER = "0" * 32


@contextlib.contextmanager
def two_app_server(folder: Path) -> Iterator[LiveServer]:
    """A :class:`LiveServer` of :data:`APP` and :data:`OTHER`: recordings in ``folder/rec``, state ``folder/state``.

    Its guard admits calls whatever the machine's load (the pages' server side is tested, not admission).
    """
    config = Config({APP: Application(APP), OTHER: Application(OTHER)})
    settings = ServerSettings(config=config, voices=Path(VOICES), recordings=folder / "rec",
                              state_dir=folder / "state", guard=CALM_GUARD)
    live = LiveServer(create_app(settings, speaker=FakeSpeaker()))
    try:
        yield live
    finally:
        live.close()

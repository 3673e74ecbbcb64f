"""The numbers' welcome prompts: a multOrders body from a file, prepared once, played on each answered call."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.admission import check_request, prepare
from engine.core.timeline import Program
from engine.errors import EngineError

log = logging.getLogger(__name__)


class Welcomes:
    """Welcome programs by file for ``engine`` (an :class:`~engine.server.app.Engine`); any thread.

    A welcome does not depend on the call (its ``callId`` is replaced), so each file is checked and its speech
    synthesised once; an unusable file is logged and plays nothing.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._programs: dict[tuple[str, str], Program] = {}  # (file, appId): the application's voice speaks it

    @property
    def ready(self) -> int:
        """How many welcome programs are prepared."""
        return len(self._programs)

    def program(self, path: Path, app_id: str) -> Program | None:
        """The welcome's program for ``app_id`` (prepared on first use), None if unusable."""
        try:
            key = (str(path), app_id)
            program = self._programs.get(key)
            if program is None:
                body = json.loads(path.read_text(encoding="utf-8"))
                body.update(appId=app_id, callId="welcome")
                request, application = check_request(body, self.engine.config, self.engine.library)
                program = self._programs[key] = prepare(request, self.engine.library, self.engine.speaker,
                                                              application.voice)
            return program
        except Exception:
            log.exception("welcome %s is unusable", path.name)
            return None

    def play(self, path: Path, app_id: str, call_id: str) -> None:
        """Queue the welcome on the live call ``call_id`` (nothing if it ended meanwhile)."""
        program = self.program(path, app_id)
        if program is not None:
            try:
                self.engine.board.submit(app_id, call_id, program)
            except EngineError as exc:
                log.info("welcome for call %s not played: %s", call_id, exc)

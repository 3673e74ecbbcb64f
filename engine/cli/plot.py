"""``render --plot OUT.png``: the rendered call drawn on one time axis (:mod:`engine.web.picture`, matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.core.reports import KeysReport, RequestReport
from engine.core.timeline import Program
from engine.media.render import Rendered


def plot_render(program: Program, rendered: Rendered, out: Path) -> None:
    """Draw ``rendered`` (the render of ``program``) to the PNG ``out``; raises ImportError without matplotlib."""
    from engine.web.picture import CallPicture, draw

    events = [(report.at_sample, body) for report, body in zip(rendered.reports, rendered.events, strict=True)
              if isinstance(report, KeysReport | RequestReport)]
    picture = CallPicture(rendered.played, rendered.heard, [(0, program)], events,
                          title=f"render of {program.request.call_id or 'a request'}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        draw(picture, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

"""``ipcc-engine demo``: the vendor's example request, a scripted caller pressing 1, rendered and played."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from engine.cli.render import EXIT_OK, run_render_job
from engine.core.timeline import Program, order_start_without_keys
from engine.format import samples_to_seconds

VENDOR_EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "vendor-example.json"
#: The scripted caller presses this key this long after the menu (the getkey order) starts.
DEMO_KEY = "1"
DEMO_KEY_DELAY_S = 1.5


def demo_key_script(program: Program) -> str:
    """``KEY@SECONDS`` for the demo caller: :data:`DEMO_KEY` 1.5 s into the first play of the menu."""
    menu_start = order_start_without_keys(program, 0, len(program.request.orders) - 1)
    return f"{DEMO_KEY}@{samples_to_seconds(menu_start) + DEMO_KEY_DELAY_S:.2f}"


def run_demo(args: argparse.Namespace) -> int:
    """Render the vendor example to ``args.output`` with a scripted key, then play it on the speaker."""
    if not args.no_play:
        from engine.local.portaudio import preload_sounddevice

        preload_sounddevice()  # PortAudio's start-up overlaps the request's preparation
    job = run_render_job(VENDOR_EXAMPLE.read_bytes(), args, start=datetime.now(), default_keys=demo_key_script)
    if job.status != EXIT_OK or job.rendered is None:
        return job.status
    print(f"# demo: the vendor's example request; the caller presses {args.keys or args.caller}", flush=True)
    rendered = job.rendered
    seconds = samples_to_seconds(rendered.request_samples)
    print(f"# demo: wrote {args.output} ({seconds:.2f} s of 8 kHz audio)", flush=True)
    for event in rendered.events:
        if event["event"] == "ivrreportdtmf":
            print(f"# demo: collected {event['dtmfCode']!r} (ended by {event['endReason']})", flush=True)
        else:
            print(f"# demo: request {event['result']}", flush=True)
    if not args.no_play:
        from engine.local.playback import play_or_explain

        print(f"# demo: {play_or_explain(rendered.played, args.device)}", flush=True)
    return EXIT_OK

"""What ``render`` and ``demo`` say in ``--help``, and a quiet end when standard output's reader goes away.

Kept apart from :mod:`engine.cli.render` so that building the parser imports nothing heavy.
"""

from __future__ import annotations

import os
import sys

RENDER_DESCRIPTION = """\
Render a multOrders request to 8 kHz WAV, as the server would play it on a call: print the response line,
write the WAV, then print the events (ivrreportdtmf, multrpt). Exit 0 when accepted, 2 when refused (nothing
is written). --keys is a scripted caller: each key@seconds (from the start of the request) becomes a real DTMF
tone in the caller's audio, decoded by the in-band detector."""
RENDER_EXAMPLE = """\
example (the vendor's example request; its menu collects one key from 14.68 s):
  ipcc-engine render engine/data/vendor-example.json -o out.wav --keys "5@16.0"
  ipcc-engine render - -o out.wav < request.json"""
DEMO_DESCRIPTION = """\
The vendor's example request with a scripted caller pressing 1 1.5 s into the menu: rendered to a WAV, the
response and events printed, then played on the sound device (or one line saying there is none)."""
DEMO_EXAMPLE = """\
example:
  ipcc-engine demo
  ipcc-engine demo --no-play -o /tmp/demo.wav --keys "0@15.5" """


def quiet_stdout() -> None:
    """Point standard output at /dev/null: its reader is gone, and flushing at exit must not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass

"""What each sub-command says in ``--help`` (description, example), and a quiet end when stdout's reader goes.

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
example:
  # the vendor's example request; its menu collects one key from 14.68 s
  ipcc-engine render engine/data/vendor-example.json -o out.wav --keys "5@16.0"
  ipcc-engine render - -o out.wav < request.json"""
DEMO_DESCRIPTION = """\
The vendor's example request with a scripted caller pressing 1 1.5 s into the menu: rendered to a WAV, the
response and events printed, then played on the sound device (or one line saying there is none)."""
DEMO_EXAMPLE = """\
example:
  ipcc-engine demo
  ipcc-engine demo --no-play -o /tmp/demo.wav --keys "0@15.5" """



def _example(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


#: Each sub-command's description and example, for those whose module gives none.
HELP = {
    "render": (RENDER_DESCRIPTION, RENDER_EXAMPLE),
    "demo": (DEMO_DESCRIPTION, DEMO_EXAMPLE),
    "detect": ("Print the DTMF keys in a recording as one line (nothing when there is none; --json: a list "
               "with each key's start in seconds, [] when none).", _example("ipcc-engine detect call.wav --json")),
    "voices": ("List the espeak-ng voices the engine speaks with, and their languages (for an application's "
               "`voice`).", _example("ipcc-engine voices --language zh")),
    "play": ("Play a request live on the sound device, with the terminal's keys (or --mic) as the caller.",
             _example("ipcc-engine play engine/data/vendor-example.json")),
    "devices": ("List the sound devices (for --device).", _example("ipcc-engine devices")),
}

def quiet_stdout() -> None:
    """Point standard output at /dev/null: its reader is gone, and flushing at exit must not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass

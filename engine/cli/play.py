"""``ipcc-engine play`` (a request played live on the sound device) and ``ipcc-engine devices``.

``play``'s request is answered by a person at the keyboard (or microphone); ``devices`` shows the sound devices
PortAudio sees.

``play`` ticks one call's media loop in a feeder thread; the loop's frames go to a blocking
:class:`~engine.local.speaker.SpeakerSink`, so the device's callback sets the pace. Output: the response line, the
events (as ``render`` prints them) when the device reaches them, a live status line on a terminal, and a
closing account. No device: one line says so and the request is rendered to the WAV instead.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli.console import EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, add_media_options, print_json
from engine.format import samples_to_seconds

if TYPE_CHECKING:  # the engine's modules are imported when a command runs: `ipcc-engine` starts fast
    from engine.core.timeline import Program
    from engine.local.speaker import SpeakerSink
    from engine.media.call import CallerSource

DEFAULT_FALLBACK = Path("ipcc-play.wav")


def _make_caller(args: argparse.Namespace, notice: Any) -> tuple[CallerSource, Any]:
    """(caller, closable): scripted keys, the microphone, or the terminal's keys."""
    from engine.cli.render import make_caller

    if args.keys:
        return make_caller(args), None
    from engine.local.keypad import Keypad
    from engine.local.mic import MicCaller

    closable: Any = MicCaller(args.mic_device).start() if args.mic else Keypad(notice=notice).start()
    return closable, closable


def cmd_play(args: argparse.Namespace) -> int:
    """``play REQUEST.json``: the request live on the speaker, the caller at the keyboard or microphone."""
    from engine.local.portaudio import preload_sounddevice

    preload_sounddevice()
    from engine.cli.render import SetupError, accept_request
    from engine.local.portaudio import NoDeviceError
    from engine.local.speaker import SpeakerSink

    start = datetime.now()
    try:
        body = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as exc:
        print(f"ipcc-engine: cannot read {args.request}: {exc.strerror}", file=sys.stderr)
        return EXIT_REFUSED
    if args.keys and args.mic:
        print("ipcc-engine: --keys and --mic: give one caller, not both", file=sys.stderr)
        return EXIT_REFUSED
    program = accept_request(body, args)
    if program is None:
        return EXIT_REFUSED
    _warn_early_keys(program, args.keys)
    fallback = args.output or DEFAULT_FALLBACK
    try:
        speaker = SpeakerSink(args.device, blocking=True)
    except NoDeviceError as exc:
        print(f"ipcc-engine: no sound device: {exc} — writing {fallback} instead", file=sys.stderr,
              flush=True)
        return _render_instead(program, args, start, fallback)
    notice = _notice_printer()
    try:
        caller, closable = _make_caller(args, notice)
    except (SetupError, NoDeviceError) as exc:
        speaker.abort()
        print(f"ipcc-engine: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return _play_live(program, caller, closable, speaker, start, args.output, fallback)


def _warn_early_keys(program: Program, keys: str) -> None:
    from engine.cli.render import early_keys

    for warning in early_keys(program, keys):
        print(f"ipcc-engine: warning: {warning}", file=sys.stderr, flush=True)


def _play_live(program: Program, caller: CallerSource, closable: Any, speaker: SpeakerSink, start: datetime,
               output: Path | None, fallback: Path) -> int:
    """The call live on ``speaker`` with its status line; then the closing account (and the WAV if asked)."""
    from engine.cli.display import Display
    from engine.local.live import LiveCall
    from engine.local.playback import account
    from engine.media.sinks import write_wav

    live = LiveCall(program, caller, speaker, start)
    display = Display(program, live, closable if hasattr(closable, "keys") else None)
    status = EXIT_OK
    try:
        live.run(display.refresh)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    finally:
        if closable is not None:
            closable.close()
        display.finish()
    if live.error is not None:
        raise live.error
    word = "interrupted" if status == EXIT_INTERRUPTED else "done"
    print(f"# play: {word}: {account(speaker)}", flush=True)
    if speaker.failure is not None:
        print(f"ipcc-engine: {speaker.failure} — writing {fallback} instead", file=sys.stderr, flush=True)
    if speaker.failure is not None or output is not None:
        write_wav(fallback, live.memory.played())
        print(f"# play: wrote {fallback} ({samples_to_seconds(len(live.memory.played())):.2f} s)", flush=True)
    return status


def _notice_printer() -> Any:
    def notice(text: str) -> None:
        prefix = "\r\033[K" if sys.stdout.isatty() else ""
        print(f"{prefix}# {text}", flush=True)
    return notice


def _render_instead(program: Program, args: argparse.Namespace, start: datetime, path: Path) -> int:
    """No device: the request rendered (scripted keys, or a silent caller) to ``path``, events printed."""
    from engine.cli.render import make_caller
    from engine.media.render import render
    from engine.media.sinks import write_wav

    caller = make_caller(args) if args.keys else None
    rendered = render(program, caller, start)
    for event in rendered.events:
        print_json(event)
    write_wav(path, rendered.played)
    print(f"# play: wrote {path} ({samples_to_seconds(len(rendered.played)):.2f} s)", flush=True)
    return EXIT_OK


def cmd_devices(args: argparse.Namespace) -> int:
    """``devices``: the sound devices PortAudio sees (``*`` marks the default output, ``<`` the input)."""
    from engine.local.portaudio import NoDeviceError, load_sounddevice

    try:
        sd = load_sounddevice()
    except NoDeviceError as exc:
        print(f"no sound devices: {exc}")
        return EXIT_OK
    devices = sd.query_devices()
    if not len(devices):
        apis = ", ".join(api["name"] for api in sd.query_hostapis())
        print(f"no sound devices (PortAudio looked through: {apis or 'no host API'})")
        return EXIT_OK
    default_in, default_out = sd.default.device
    for index, dev in enumerate(devices):
        api = sd.query_hostapis(dev["hostapi"])["name"]
        mark = ("*" if index == default_out else " ") + ("<" if index == default_in else " ")
        print(f"{mark}{index:3d} {dev['name']} ({api}): out {dev['max_output_channels']}, "
              f"in {dev['max_input_channels']}, {dev['default_samplerate']:g} Hz")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``play`` and ``devices`` to ``ipcc-engine``'s sub-commands."""
    play = subparsers.add_parser(
        "play", help="play a request live on the sound device; answer with keys",
        description="Play a multOrders request live on the sound device, at its pace, with the terminal's keys "
                    "(0-9 * # A-D) or the microphone (--mic) as the caller, a live status line, then the events. "
                    "Ctrl-C hangs up and prints the partial result; without a device the request is rendered to "
                    "a WAV instead.",
        epilog="example:\n  ipcc-engine play engine/data/vendor-example.json            # type 5 when the menu plays"
               "\n  ipcc-engine play request.json --keys \"5@16.0\" -o played.wav",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    play.add_argument("request", help="the request JSON file, or - for standard input")
    play.add_argument("--device", help="output device, index or name (see `ipcc-engine devices`)")
    play.add_argument("--mic", action="store_true", help="the caller's audio from the microphone")
    play.add_argument("--mic-device", help="input device for --mic (default: the default input)")
    play.add_argument("--keys", default="", help='scripted caller instead: "5@16.0,#@17.0" (as for render)')
    play.add_argument("-o", "--output", type=Path,
                      help=f"also write what was played here; without a device the audio goes here "
                           f"(default: ./{DEFAULT_FALLBACK})")
    play.add_argument("--max-seconds", type=float, default=3600.0,
                      help="refuse requests that would play longer than this without keys (default: 3600)")
    add_media_options(play)
    play.set_defaults(func=cmd_play, caller=None, stereo=False, encoding="pcm16")

    devices = subparsers.add_parser(
        "devices", help="list the sound devices (for --device)",
        description="List the sound devices PortAudio sees: * marks the default output, < the default input.",
        epilog="example:\n  ipcc-engine devices\n  ipcc-engine play request.json --device 3",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    devices.set_defaults(func=cmd_devices)

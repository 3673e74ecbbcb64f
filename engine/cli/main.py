"""``ipcc-engine``: the command line. Each sub-command is a thin edge over the engine's core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from engine import __version__
from engine.cli import play, serve
from engine.cli.console import EXIT_INTERRUPTED, EXIT_OK, add_media_options, fail, print_json
from engine.cli.help import DEMO_DESCRIPTION, DEMO_EXAMPLE, RENDER_DESCRIPTION, RENDER_EXAMPLE, quiet_stdout


def _read_request(source: str) -> bytes:
    return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()


def cmd_render(args: argparse.Namespace) -> int:
    """``render REQUEST.json -o OUT.wav``: print the response and events, write the call's audio."""
    from engine.cli.render import run_render_job

    try:
        body = _read_request(args.request)
    except OSError as exc:
        return fail(f"cannot read {args.request}: {exc.strerror}")
    return run_render_job(body, args, start=datetime.now()).status


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the vendor's example with a scripted caller pressing a key, rendered and played."""
    from engine.cli.demo import run_demo

    return run_demo(args)


def cmd_detect(args: argparse.Namespace) -> int:
    """``detect IN.wav``: the keys in a recording, as one line (``--json``: with start times)."""
    from engine.audio.decode import AudioDecodeError, load_audio
    from engine.dtmf.detector import detect_keys
    from engine.format import samples_to_seconds

    try:
        samples = load_audio(args.input, channel=args.channel)
    except (AudioDecodeError, ValueError) as exc:
        return fail(str(exc))
    events = detect_keys(samples)
    if args.json:
        print_json([{"key": e.key, "start": round(samples_to_seconds(e.start_sample), 4)} for e in events])
    else:
        print("".join(e.key for e in events))
    return EXIT_OK


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    add_media_options(parser)
    parser.add_argument("--encoding", choices=("pcm16", "ulaw", "alaw"), default="pcm16",
                        help="WAV sample encoding (default: pcm16)")
    parser.add_argument("--keys", default="", help='scripted caller: "5@16.0,#@17.0" (key@seconds from the start)')
    parser.add_argument("--caller", type=Path, help="the caller's audio from a file (first channel)")
    parser.add_argument("--stereo", action="store_true", help="the caller's audio on a second channel")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="refuse requests that would play longer than this without keys (default: 3600)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="ipcc-engine", description="IPCC multOrders telephony media engine")
    parser.add_argument("--version", action="version", version=f"ipcc-engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="render a multOrders request to an 8 kHz WAV",
                                 description=RENDER_DESCRIPTION, epilog=RENDER_EXAMPLE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    render.add_argument("request", help="the request JSON file, or - for standard input")
    render.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    _add_render_options(render)
    render.set_defaults(func=cmd_render)

    demo = commands.add_parser("demo", help="the vendor's example with a scripted caller, rendered and played",
                               description=DEMO_DESCRIPTION, epilog=DEMO_EXAMPLE,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("-o", "--output", type=Path, default=Path("ipcc-demo.wav"),
                      help="the WAV file to write (default: ./ipcc-demo.wav)")
    demo.add_argument("--no-play", action="store_true", help="do not try the sound device")
    demo.add_argument("--device", help="output device (see `ipcc-engine devices`)")
    _add_render_options(demo)
    demo.set_defaults(func=cmd_demo)

    detect = commands.add_parser("detect", help="print the DTMF keys in a recording")
    detect.add_argument("input", type=Path, help="the audio file (any rate; resampled to 8 kHz)")
    detect.add_argument("--json", action="store_true", help="each key with its start time in seconds")
    detect.add_argument("--channel", type=int, default=0, help="channel of a multi-channel file (default: 0)")
    detect.set_defaults(func=cmd_detect)

    serve.register(commands)
    play.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ipcc-engine``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (``| head``): end quietly
        quiet_stdout()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""``ipcc-engine``: the command line. Each sub-command is a thin edge over the engine's core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import __version__
from engine.cli import detect, play, serve
from engine.cli.console import EXIT_INTERRUPTED, EXIT_OK, add_media_options, fail, print_json
from engine.cli.help import HELP, quiet_stdout


def _read_request(source: str) -> bytes:
    return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()


def cmd_render(args: argparse.Namespace) -> int:
    """``render REQUEST.json -o OUT.wav``: print the response and events, write the call's audio."""
    from engine.cli.render import run_render_job

    folder = args.output.parent
    if not folder.is_dir():
        return fail(f"-o {args.output}: the folder {str(folder)!r} does not exist (nothing was rendered)")
    try:
        body = _read_request(args.request)
    except OSError as exc:
        return fail(f"cannot read {args.request}: {exc.strerror}")
    return run_render_job(body, args, start=datetime.now()).status


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the vendor's example with a scripted caller pressing a key, rendered and played."""
    from engine.cli.demo import run_demo

    return run_demo(args)


def cmd_voices(args: argparse.Namespace) -> int:
    """``voices``: the espeak-ng voices with their languages (``--json``: one JSON line)."""
    from engine.tts.voices import available_voices

    voices = [v for v in available_voices() if not args.language
              or any(lang.lower().startswith(args.language.lower()) for lang in v.languages)]
    if args.json:
        print_json([{"voice": v.voice_id, "name": v.name, "languages": list(v.languages)} for v in voices])
    else:
        width = max((len(v.voice_id) for v in voices), default=0)
        for v in voices:
            print(f"{v.voice_id:<{width}}  {','.join(v.languages):<24}  {v.name}")
    return EXIT_OK


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    add_media_options(parser)
    parser.add_argument("--encoding", choices=("pcm16", "ulaw", "alaw"), default="pcm16",
                        help="WAV sample encoding (default: pcm16)")
    parser.add_argument("--keys", default="", help='scripted caller: "5@16.0,#@17.0" (key@seconds from the start; '
                                                   'keys before the getkey order starts are not collected)')
    parser.add_argument("--caller", type=Path, help="the caller's audio from a file (first channel)")
    parser.add_argument("--stereo", action="store_true", help="the caller's audio on a second channel")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="refuse requests that would play longer than this without keys (default: 3600)")


def _describe(commands: Any) -> None:
    for name, (description, example) in HELP.items():
        sub = commands.choices[name]
        sub.description = sub.description or description
        sub.epilog = sub.epilog or example
        sub.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="ipcc-engine", description="IPCC multOrders telephony media engine")
    parser.add_argument("--version", action="version", version=f"ipcc-engine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    render = commands.add_parser("render", help="render a multOrders request to an 8 kHz WAV")
    render.add_argument("request", help="the request JSON file, or - for standard input")
    render.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    render.add_argument("--plot", type=Path, help="also draw the call on one time axis to this PNG (extra: plot)")
    _add_render_options(render)
    render.set_defaults(func=cmd_render)

    demo = commands.add_parser("demo", help="the vendor's example with a scripted caller, rendered and played")
    demo.add_argument("-o", "--output", type=Path, default=Path("ipcc-demo.wav"),
                      help="the WAV file to write (default: ./ipcc-demo.wav)")
    demo.add_argument("--no-play", action="store_true", help="do not try the sound device")
    demo.add_argument("--device", help="output device (see `ipcc-engine devices`)")
    _add_render_options(demo)
    demo.set_defaults(func=cmd_demo)

    detect.register(commands)

    voices = commands.add_parser("voices", help="list the espeak-ng voices and their languages")
    voices.add_argument("--language", help="only voices of this language (a prefix: zh, en-us)")
    voices.add_argument("--json", action="store_true", help="one JSON line")
    voices.set_defaults(func=cmd_voices)

    serve.register(commands)
    play.register(commands)
    _describe(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ipcc-engine``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # inside the try: a closed pipe is found here, not at exit
        return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (``| head``): end quietly
        quiet_stdout()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""The render job behind ``render`` and ``demo``: a request body in; the response, events and a WAV out."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.admission import admit
from engine.audio.caller import make_caller as caller_for
from engine.audio.caller import parse_key_script
from engine.audio.library import VoiceLibrary
from engine.cli.console import EXIT_OK, EXIT_REFUSED, print_json
from engine.config import ConfigError, load_config
from engine.core.timeline import Program, order_start_without_keys
from engine.errors import OK, EndpointError, EngineError, SetupError
from engine.format import samples_to_seconds
from engine.media.call import CallerSource
from engine.media.render import Rendered, render
from engine.media.sinks import write_wav
from engine.tts.synthesizer import synthesizer
from engine.wire.request import error_response, ids_of, response


@dataclass
class JobResult:
    """The outcome of a render job: the exit status and, when accepted, the program and what it rendered."""

    status: int
    program: Program | None = None
    rendered: Rendered | None = None


def make_caller(args: argparse.Namespace) -> CallerSource | None:
    """The caller named by ``--keys`` or ``--caller`` (None: a silent caller); :class:`SetupError` naming it."""
    if not args.keys and not args.caller:
        return None
    try:
        return caller_for(args.keys, str(args.caller) if args.caller else None, names=("--keys", "--caller"))
    except EndpointError as exc:
        raise SetupError(str(exc)) from None


def accept_request(body: bytes, args: argparse.Namespace) -> Program | None:
    """Check and prepare ``body`` as ``args`` say and print the response line.

    ``args`` gives ``config``, ``voices``, ``cache`` and ``max_seconds``. Returns None when refused (the refusal
    printed, or a bad option on standard error).
    """
    try:
        config = load_config(args.config)
        library = VoiceLibrary(args.voices)
    except (ConfigError, NotADirectoryError) as exc:
        print(f"ipcc-engine: {exc}", file=sys.stderr)
        return None
    try:
        program = admit(body, config, library, synthesizer(args.cache), max_seconds=args.max_seconds,
                        limit_name="--max-seconds")
    except EngineError as exc:
        print_json(error_response(exc, ids_of(body)))
        return None
    except Exception as exc:  # an internal failure: reported as the contract's 108104, with the traceback
        traceback.print_exc(file=sys.stderr)
        print_json(error_response(EngineError(f"internal failure: {exc}"), ids_of(body)))
        return None
    print_json(response(OK, "ok", program.request.app_id, program.request.call_id))
    return program


def run_render_job(body: bytes, args: argparse.Namespace, start: datetime,
                   default_keys: Callable[[Program], str] | None = None) -> JobResult:
    """Check, prepare and render ``body``; print the response line, write ``args.output``, print the events.

    ``default_keys(program)``: the key script of the caller when ``args`` names none (default: a silent caller).
    The WAV is written before the event lines, so that a reader who stops early (``| head``) still gets it.
    """
    folder = args.output.parent
    if not folder.is_dir():
        print(f"ipcc-engine: -o {args.output}: the folder {folder} does not exist", file=sys.stderr)
        return JobResult(EXIT_REFUSED)
    try:
        caller = make_caller(args)
    except SetupError as exc:
        print(f"ipcc-engine: {exc}", file=sys.stderr)
        return JobResult(EXIT_REFUSED)
    program = accept_request(body, args)
    if program is None:
        return JobResult(EXIT_REFUSED)
    if caller is None and default_keys is not None:
        args.keys = default_keys(program)
        caller = make_caller(args)
    for warning in early_keys(program, args.keys):
        print(f"ipcc-engine: warning: {warning}", file=sys.stderr, flush=True)
    rendered = render(program, caller, start)
    _write_atomically(args.output, rendered, args.stereo, args.encoding)
    for event in rendered.events:
        print_json(event)
    if getattr(args, "plot", None) is not None:
        from engine.cli.plot import plot_render

        plot_render(program, rendered, args.plot)
    return JobResult(EXIT_OK, program, rendered)


def early_keys(program: Program, keys: str) -> list[str]:
    """A warning for each scripted key that begins before the getkey order starts (it cannot be collected)."""
    if not keys or not program.request.collecting:
        return []
    opens = order_start_without_keys(program, 0, len(program.request.orders) - 1)
    return [f"--keys {press.key}@{samples_to_seconds(press.at_sample):g}: collection opens at "
            f"{samples_to_seconds(opens):.2f} s (the getkey order's start), so this key is not collected"
            for press in parse_key_script(keys) if press.at_sample < opens]


def _write_atomically(path: Path, rendered: Rendered, stereo: bool, encoding: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_wav(tmp, rendered.played, rendered.heard if stereo else None, encoding)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

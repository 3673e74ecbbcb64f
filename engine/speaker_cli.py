"""``ipcc-engine play`` and ``ipcc-engine devices``: a request played live on the sound device, answered by
a person at the keyboard (or microphone); the sound devices PortAudio sees.

``play`` ticks one call's media loop in a feeder thread; the loop's frames go to a blocking
:class:`~engine.speaker.SpeakerSink`, so the device's callback sets the pace. Output: the response line, the
events (as ``render`` prints them) when the device reaches them, a live status line on a terminal, and a
closing account. No device: one line says so and the request is rendered to the WAV instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, samples_to_seconds

if TYPE_CHECKING:  # the engine's modules are imported when a command runs: `ipcc-engine` starts fast
    from .call import Call, CallerSource
    from .player import PlayerEvent, Status
    from .sinks import MemorySink
    from .speaker import SpeakerSink
    from .timeline import Program

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130
DEFAULT_FALLBACK = Path("ipcc-play.wav")


def _print(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


class _Tee:
    """The call's sink: every frame kept in memory (the fallback WAV) and queued for the speaker."""

    def __init__(self, memory: MemorySink, speaker: SpeakerSink) -> None:
        self.memory, self.speaker = memory, speaker

    def write(self, played: Any, heard: Any) -> None:
        self.memory.write(played, heard)
        self.speaker.write(played, heard)

    def close(self) -> None:
        self.speaker.close()


class LiveCall:
    """One request on one call, fed to ``speaker`` at the device's pace by a feeder thread.

    ``events`` holds ``(at_sample, body)`` not yet shown; ``status`` the player's status per tick (the tick
    whose frame the device plays now is ``speaker.queue.popped``). :meth:`interrupt` hangs the call up.
    """

    def __init__(self, program: Program, caller: CallerSource, speaker: SpeakerSink, start: datetime) -> None:
        from .call import Call
        from .sinks import MemorySink

        self.program, self.speaker, self.start = program, speaker, start
        self.memory = MemorySink()
        request = program.request
        self.call = Call(request.app_id, request.call_id, caller, _Tee(self.memory, speaker), self._on_event)
        self.call.submit(program)
        self.events: deque[tuple[int, dict[str, Any]]] = deque()
        self.statuses: deque[tuple[int, Status | None]] = deque(maxlen=512)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="media-feeder", daemon=True)

    def _on_event(self, call: Call, event: PlayerEvent, at_sample: int) -> None:
        from .events import event_body

        moment = self.start + timedelta(seconds=at_sample / SAMPLE_RATE_HZ)
        self.events.append((at_sample, event_body(event, call.app_id, call.call_id, moment)))

    def _feed(self) -> None:
        from .loop import MediaLoop

        loop, call = MediaLoop(), self.call
        loop.add(call)
        try:
            while not call.idle:
                if self._stop.is_set() and not call.hung_up:
                    call.hang_up()
                    continue
                loop.tick()
                player = call.player
                self.statuses.append((loop.ticks, player.status() if player else None))
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            loop.remove(call)  # closes the sink: the device plays out what is queued

    def run(self, on_wait: Any) -> None:
        """Feed the call until it ends, calling ``on_wait()`` every 100 ms; Ctrl-C hangs up and re-raises."""
        self._thread.start()
        try:
            while self._thread.is_alive():
                self._thread.join(0.1)
                on_wait()
        except KeyboardInterrupt:
            self._stop.set()
            self.speaker.abort()
            self._thread.join(2.0)
            raise

    def status_now(self) -> Status | None:
        """The player's status for the frame the device is playing now (None: nothing playing)."""
        tick = self.speaker.queue.popped
        for at_tick, status in reversed(self.statuses):
            if at_tick <= max(tick, 1):
                return status
        return None

    def due_events(self, everything: bool = False) -> list[dict[str, Any]]:
        """Events the device has reached (``everything``: all of them), removed from :attr:`events`."""
        played = self.speaker.queue.popped * SAMPLES_PER_FRAME
        out = []
        while self.events and (everything or self.events[0][0] <= played):
            out.append(self.events.popleft()[1])
        return out


class Display:
    """The live status line (a terminal only: redrawn in place) and the event lines."""

    def __init__(self, program: Program, live: LiveCall, keys: Any = None) -> None:
        self.program, self.live, self.keys = program, live, keys
        self.tty = sys.stdout.isatty()

    def line(self) -> str:
        """What is playing: order and repetition, loop, keys collected, timers left, seconds played."""
        status, request = self.live.status_now(), self.program.request
        played = samples_to_seconds(self.live.speaker.queue.popped * SAMPLES_PER_FRAME)
        text = f"{played:6.1f} s"
        if status is not None:
            order = request.orders[status.order_index]
            source = order.source if len(order.source) <= 24 else order.source[:23] + "…"
            what = "gap" if status.in_gap else f"{order.kind.name.lower()} {source!r}"
            text += (f" | order {status.order_index + 1}/{len(request.orders)} play {status.repetition + 1}"
                     f"/{order.plays} loop {status.loop + 1}/{request.loops}: {what}")
            if status.collecting or status.digits:
                text += f" | keys {status.digits!r}"
            if status.samples_to_deadline is not None and status.collecting:
                text += f" | timer {samples_to_seconds(max(0, status.samples_to_deadline)):.1f} s"
        if self.keys is not None:
            text += f" | typed {self.keys.keys!r}"
        return text + f" | underflows {self.live.speaker.underflows}"

    def refresh(self, everything: bool = False) -> None:
        """Print due events (above the status line), then redraw the status line on a terminal."""
        events = self.live.due_events(everything)
        if self.tty and events:
            print("\r\033[K", end="")
        for event in events:
            _print(event)
        if self.tty and not everything:
            print("\r\033[K" + self.line()[:200], end="", flush=True)

    def finish(self) -> None:
        """Clear the status line and print every event not shown yet."""
        if self.tty:
            print("\r\033[K", end="", flush=True)
        self.refresh(everything=True)


def _make_caller(args: argparse.Namespace, notice: Any) -> tuple[CallerSource, Any]:
    """(caller, closable): scripted keys, the microphone, or the terminal's keys."""
    from .job import make_caller

    if args.keys:
        return make_caller(args), None
    from .keypad import Keypad, MicCaller

    closable: Any = MicCaller(args.mic_device).start() if args.mic else Keypad(notice=notice).start()
    return closable, closable


def cmd_play(args: argparse.Namespace) -> int:
    """``play REQUEST.json``: the request live on the speaker, the caller at the keyboard or microphone."""
    from .speaker import preload_sounddevice

    preload_sounddevice()
    from .job import SetupError
    from .playback import account
    from .sinks import write_wav
    from .speaker import NoDeviceError, SpeakerSink

    start = datetime.now()
    try:
        body = sys.stdin.buffer.read() if args.request == "-" else Path(args.request).read_bytes()
    except OSError as exc:
        print(f"ipcc-engine: cannot read {args.request}: {exc.strerror}", file=sys.stderr)
        return EXIT_REFUSED
    if args.keys and args.mic:
        print("ipcc-engine: --keys and --mic: give one caller, not both", file=sys.stderr)
        return EXIT_REFUSED
    program = _prepare(body, args)
    if program is None:
        return EXIT_REFUSED
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
    if speaker.failure is not None or args.output is not None:
        write_wav(fallback, live.memory.played())
        print(f"# play: wrote {fallback} ({samples_to_seconds(len(live.memory.played())):.2f} s)", flush=True)
    return status


def _prepare(body: bytes, args: argparse.Namespace) -> Program | None:
    """Check and prepare the request as ``render`` does; print the response line (None: refused)."""
    from .config import ConfigError, load_config
    from .errors import EngineError, RequestError
    from .intake import check_request
    from .job import _ids
    from .library import VoiceLibrary
    from .media import prepare
    from .render import render_seconds
    from .request import error_response, response
    from .speech import synthesizer

    try:
        config, library = load_config(args.config), VoiceLibrary(args.voices)
    except (ConfigError, NotADirectoryError) as exc:
        print(f"ipcc-engine: {exc}", file=sys.stderr)
        return None
    try:
        request, application = check_request(body, config, library)
        program = prepare(request, library, synthesizer(args.cache), application.voice)
        seconds = render_seconds(program)
        if seconds > args.max_seconds:
            raise RequestError("request", f"plays {seconds:.1f} s without keys, "
                                          f"over --max-seconds {args.max_seconds:g}")
    except EngineError as exc:
        _print(error_response(exc, _ids(body)))
        return None
    _print(response("000000", "ok", request.app_id, request.call_id))
    return program


def _notice_printer() -> Any:
    def notice(text: str) -> None:
        prefix = "\r\033[K" if sys.stdout.isatty() else ""
        print(f"{prefix}# {text}", flush=True)
    return notice


def _render_instead(program: Program, args: argparse.Namespace, start: datetime, path: Path) -> int:
    """No device: the request rendered (scripted keys, or a silent caller) to ``path``, events printed."""
    from .job import make_caller
    from .render import render
    from .sinks import write_wav

    caller = make_caller(args) if args.keys else None
    rendered = render(program, caller, start)
    for event in rendered.events:
        _print(event)
    write_wav(path, rendered.played)
    print(f"# play: wrote {path} ({samples_to_seconds(len(rendered.played)):.2f} s)", flush=True)
    return EXIT_OK


def cmd_devices(args: argparse.Namespace) -> int:
    """``devices``: the sound devices PortAudio sees (``*`` marks the default output, ``<`` the input)."""
    from .speaker import NoDeviceError, load_sounddevice

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
    from .cli import _add_media_options

    play = subparsers.add_parser("play", help="play a request live on the sound device; answer with keys")
    play.add_argument("request", help="the request JSON file, or - for standard input")
    play.add_argument("--device", help="output device, index or name (see `ipcc-engine devices`)")
    play.add_argument("--mic", action="store_true", help="the caller's audio from the microphone")
    play.add_argument("--mic-device", help="input device for --mic (default: the default input)")
    play.add_argument("--keys", default="", help='scripted caller instead: "5@3.2,#@4.0" (as for render)')
    play.add_argument("-o", "--output", type=Path,
                      help=f"also write what was played here; without a device the audio goes here "
                           f"(default: ./{DEFAULT_FALLBACK})")
    play.add_argument("--max-seconds", type=float, default=3600.0,
                      help="refuse requests that would play longer than this without keys (default: 3600)")
    _add_media_options(play)
    play.set_defaults(func=cmd_play, caller=None, stereo=False, encoding="pcm16")

    devices = subparsers.add_parser("devices", help="list the sound devices (for --device)")
    devices.set_defaults(func=cmd_devices)

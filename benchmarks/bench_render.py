"""Render benchmarks: a multOrders request to call audio, cold and warm, beside ``espeak-ng`` + ``sox``.

Two requests: the vendor's example (``engine/data/vendor-example.json``) and a long one of 32 orders mixing
English and Mandarin speech with every file of ``voices/``. For each:

* cold: ``ipcc-engine render REQUEST -o OUT.wav --cache EMPTY_DIR`` as a new process (wall time, median);
* warm, new process: the same command with the cache filled by an earlier run;
* warm, in-process: check + prepare + render with every prompt cached, in seconds of audio per second;
* baseline: the same prompts through the ``espeak-ng`` command and ``sox`` (8 kHz, pad/repeat/trim,
  concatenation) building the same timeline, in a fresh folder each time: it has no cache, so it is the
  baseline of both cold and warm.

Everything is written to temporary folders.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .common import Row, median_seconds

ROOT = Path(__file__).resolve().parent.parent
VENDOR_EXAMPLE = ROOT / "engine" / "data" / "vendor-example.json"
VOICES = ROOT / "voices"
VOICE_FILES = ("filepath", "welcome.wav", "menu.flac", "goodbye.ogg", "beep.wav")
BASELINE = "espeak-ng + sox"
DEMO_APP_ID = "247e35ff320a4142a105024055c367cf"  # the vendor example's, configured by default
COLD_TARGET_S = 1.0
WARM_TARGET_X = 1000.0
RATE_UNIT = "× real time"  # seconds of audio per second of wall time
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
ENGLISH = (
    "Welcome to the customer service line.", "Your call is important to us. Please stay on the line.",
    "For your account balance, press one.", "To speak to an agent, press zero.",
    "Your remaining data this month is two point five gigabytes.",
    "Please enter your eight digit account number.",
    "We are experiencing a high volume of calls.", "Thank you for your patience.",
)
MANDARIN = (
    "欢迎致电客户服务热线。", "您的短信剩余15条。", "查询余额请按1，人工服务请按0。",
    "请输入您的八位账号，以井号键结束。", "本月剩余流量两点五吉字节。", "当前通话量较大，请耐心等待。",
    "感谢您的耐心等待。", "您的账户余额为一百二十元。",
)


def long_request(files: tuple[str, ...]) -> dict:
    """A 32-order request: speech (English and Mandarin in turn), every 4th order a file of ``files``.

    The last order collects keys (2 plays, 2 s apart).
    """
    texts = [t for pair in zip(ENGLISH, MANDARIN, strict=True) for t in pair]
    orders, spoken = [], 0
    for i in range(32):
        if i % 4 == 3 and files and i != 31:
            flag, source = 1, files[(i // 4) % len(files)]
        else:
            flag, source, spoken = 0, texts[spoken % len(texts)], spoken + 1
        order = {"playFlag": flag, "voiceStr": source, "playTime": 2 if i % 5 == 0 else 1,
                 "spaceTime": 1 if i % 5 == 0 else 0, "data": f"order {i}"}
        if i == 31:
            order.update(getkey=1, playTime=2, spaceTime=2, maxRevCnt=4, key2End="#", totalTime=0)
        orders.append(order)
    return {"appId": DEMO_APP_ID, "callId": "bench-long-32", "playtime": 1, "orders": orders}


def voice_library(tmp: Path) -> tuple[Path, tuple[str, ...], str]:
    """``voices/`` and its files when ``filepath`` is there; else stand-in tones in ``tmp`` (noted)."""
    present = tuple(f for f in VOICE_FILES if (VOICES / f).is_file())
    if "filepath" in present:
        return VOICES, present, ""
    import numpy as np
    import soundfile as sf

    root = tmp / "voices"
    root.mkdir()
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(16000) / 8000)).astype(np.int16)
    for name in VOICE_FILES:
        sf.write(root / name, tone, 8000, format="WAV")
    return root, VOICE_FILES, "voices/ not ready: 2 s stand-in tones for its files"


def engine_command() -> list[str]:
    """The ``ipcc-engine`` console script beside this Python, else ``python -m engine.cli``."""
    script = Path(sys.executable).parent / "ipcc-engine"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "engine.cli"]


def run_quiet(command: list[str]) -> None:
    """Run ``command``; RuntimeError with its last stderr line when it fails."""
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"{Path(command[0]).name} exited {done.returncode}: {last}")


def median_wall(make: Callable[[int], list[list[str]]], repeats: int) -> float:
    """Median wall time (s) of running the commands ``make(i)`` gives, one after another, for i < repeats."""
    times = []
    for i in range(repeats):
        commands = make(i)
        start = time.perf_counter()
        for command in commands:
            run_quiet(command)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def baseline_commands(body: dict, voices: Path, work: Path) -> list[list[str]]:
    """The ``espeak-ng``/``sox`` commands building the request's timeline (no keys) into ``work/out.wav``."""
    from engine.core.orders import PlayKind
    from engine.wire.request import parse_mult_orders

    request = parse_mult_orders(body)
    to_call = ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]
    commands, sources, parts = [], {}, []
    for k, order in enumerate(request.orders):
        key = (order.kind, order.source)
        if key not in sources:
            converted = sources[key] = work / f"source{len(sources)}.wav"
            if order.kind is PlayKind.SPEECH:
                raw = work / f"espeak{len(sources)}.wav"
                voice = "cmn" if _HAN.search(order.source) else "en-us"
                commands.append(["espeak-ng", "-v", voice, "-w", str(raw), order.source])
                commands.append(["sox", str(raw), *to_call, str(converted)])
            else:
                path = voices / order.source
                kind = [] if path.suffix else ["-t", "wav"]  # ``filepath`` has no extension
                commands.append(["sox", *kind, str(path), *to_call, str(converted)])
        gap_s, effects = order.gap_samples / 8000, []
        if gap_s:
            effects += ["pad", "0", f"{gap_s:g}"]
        if order.plays > 1:
            effects += ["repeat", str(order.plays - 1)]
        if gap_s and order.collect is None:  # no gap after the last play, except on the getkey order
            effects += ["trim", "0", f"-{gap_s:g}"]
        if order.collect is not None and order.collect.total_samples:
            total_s = f"{order.collect.total_samples / 8000:g}"
            effects += ["pad", "0", total_s, "trim", "0", total_s]
        parts.append(work / f"order{k}.wav")
        commands.append(["sox", str(sources[key]), str(parts[-1]), *effects])
    commands.append(["sox", *map(str, parts * request.loops), str(work / "out.wav")])
    return commands


def warm_in_process(body: bytes, voices: Path, cache: Path, repeats: int) -> tuple[float, float]:
    """(seconds of audio, median seconds) of admit (check + prepare + limit) + render here, every prompt cached."""
    from engine.admission import admit
    from engine.audio.library import VoiceLibrary
    from engine.config import default_config
    from engine.format import samples_to_seconds
    from engine.media.render import render
    from engine.tts.synthesizer import synthesizer

    config, library, speaker = default_config(), VoiceLibrary(voices), synthesizer(cache)

    def job() -> int:
        return len(render(admit(body, config, library, speaker, max_seconds=3600)).played)

    audio_s = samples_to_seconds(job())
    return audio_s, median_seconds(job, repeats, warmup=1)


def bench_request(label: str, body: dict, voices: Path, tmp: Path, reps: dict[str, int], note: str,
                  vendor: bool) -> list[Row]:
    """The rows of one request: cold and warm as new processes, warm in-process, and the baseline."""
    import soundfile as sf

    slug = label.replace(" ", "-")
    request_path = tmp / f"{slug}.json"
    request_path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    out, warm_cache = tmp / f"{slug}.wav", tmp / f"{slug}-warm-cache"

    def render_cmd(cache: Path) -> list[list[str]]:
        return [[*engine_command(), "render", str(request_path), "-o", str(out), "--cache", str(cache),
                 "--voices", str(voices)]]

    cold_s = median_wall(lambda i: render_cmd(tmp / f"{slug}-cold-cache-{i}"), reps["cold"])
    audio_s = sf.info(str(out)).frames / 8000
    run_quiet(render_cmd(warm_cache)[0])  # fills the cache the warm runs read
    warm_cli_s = median_wall(lambda i: render_cmd(warm_cache), reps["warm_cli"])
    rendered_s, warm_s = warm_in_process(request_path.read_bytes(), voices, warm_cache, reps["warm"])

    base_s, base_note = None, "espeak-ng/sox not installed"
    if shutil.which("espeak-ng") and shutil.which("sox"):
        commands: list[list[str]] = []

        def pipeline(i: int) -> list[list[str]]:
            work = tmp / f"{slug}-baseline-{i}"
            work.mkdir()
            commands[:] = baseline_commands(body, voices, work)
            return commands

        base_s = median_wall(pipeline, reps["baseline"])
        base_audio_s = sf.info(str(tmp / f"{slug}-baseline-0" / "out.wav")).frames / 8000
        base_note = (f"baseline: {len(commands)} commands, no cache; its espeak prompts keep their silences "
                     f"({base_audio_s:.1f} s of audio)")
    base_rate = audio_s / base_s if base_s else None
    name = f"{label} ({audio_s:.1f} s audio)"
    extra = f"; {note}" if note else ""
    warm_x = rendered_s / warm_s
    return [
        Row("render", f"{name}: cold, new process, empty cache", cold_s, "s", BASELINE, base_s,
            f"< {COLD_TARGET_S:g} s" if vendor else "", cold_s < COLD_TARGET_S if vendor else None,
            note=base_note + extra),
        Row("render", f"{label}: cold, audio per second", audio_s / cold_s, RATE_UNIT, BASELINE, base_rate),
        Row("render", f"{label}: warm, new process, cache on disk", warm_cli_s, "s", BASELINE, base_s),
        Row("render", f"{label}: warm, in-process, cache hit", warm_x, RATE_UNIT, BASELINE, base_rate,
            f"≥ {WARM_TARGET_X:g}×" if vendor else "", warm_x >= WARM_TARGET_X if vendor else None),
    ]


def run(quick: bool) -> list[Row]:
    """Render rows: start-up, then the vendor example and the 32-order request (see the module docstring)."""
    reps = {"cold": 3, "warm_cli": 3, "warm": 5, "baseline": 2, "startup": 3} if quick else \
        {"cold": 5, "warm_cli": 5, "warm": 15, "baseline": 5, "startup": 7}
    long_reps = dict(reps, cold=2, baseline=1) if quick else dict(reps, cold=3, baseline=3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ipcc-bench-render-") as name:
        tmp = Path(name)
        voices, files, note = voice_library(tmp)
        startup_s = median_wall(lambda i: [[sys.executable, "-c", "import engine.cli.render"]], reps["startup"])
        rows.append(Row("render", "start-up: new Python process, engine imports", startup_s, "s",
                        note="part of every new-process figure below"))
        vendor = json.loads(VENDOR_EXAMPLE.read_text(encoding="utf-8"))
        rows += bench_request("vendor example", vendor, voices, tmp, reps, note, vendor=True)
        rows += bench_request("32 orders", long_request(files), voices, tmp, long_reps, note, vendor=False)
    return rows

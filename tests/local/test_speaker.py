"""The speaker path through real PortAudio on a machine without a sound card (see :mod:`engine.testing.alsa`).

A paced ALSA ``file`` device captures what is played; the capture is compared with ``render``'s WAV, PortAudio's
leading silence aside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.format import SAMPLES_PER_FRAME
from engine.local.frame_queue import END, FrameQueue
from engine.testing.alsa import VOICES, AlsaCapture, engine_request, interruptible_cli
from engine.testing.harness import wait_for

KEYS = "2@2.5"


def engine_cli(env: dict[str, str], cwd: Path, *argv: str,
               timeout_s: float = 60) -> subprocess.CompletedProcess:
    """``ipcc-engine ARGV...`` in a subprocess with ``env``, the test voices, no standard input."""
    if argv[0] in ("render", "play"):
        argv = (*argv, "--voices", VOICES)
    return subprocess.run([sys.executable, "-m", "engine.cli", *argv], env=env, cwd=cwd, timeout=timeout_s,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    return engine_request(tmp_path)


@pytest.fixture
def rendered(tmp_path: Path, request_file: Path) -> tuple[np.ndarray, list[dict]]:
    out = tmp_path / "render.wav"
    done = engine_cli(dict(os.environ), tmp_path, "render", str(request_file), "--keys", KEYS, "-o", str(out))
    assert done.returncode == 0, done.stderr
    return sf.read(out, dtype="int16")[0], events_of(done.stdout)


def events_of(stdout: str) -> list[dict]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [{k: v for k, v in line.items() if k != "timeStamp"} for line in lines]


def after_leading_silence(captured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    lead = len(captured) - len(reference)
    assert 0 <= lead <= 8 * SAMPLES_PER_FRAME and lead % SAMPLES_PER_FRAME == 0, lead
    assert not captured[:lead].any()
    return captured[lead:]


def test_play_sends_the_device_sample_for_sample_what_render_writes(tmp_path, request_file, rendered):
    audio, events = rendered
    with AlsaCapture(tmp_path / "device") as device:
        done = engine_cli(device.env, tmp_path, "play", str(request_file), "--keys", KEYS)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(after_leading_silence(device.samples(), audio), audio)
    assert events_of(done.stdout) == events and events[-1]["dtmfCode"] == "2"
    account = done.stdout.splitlines()[-1]
    assert account.startswith("# play: done: played 2.54 s on 'default' at 8000 Hz")
    assert "underflows 0" in account
    assert "Traceback" not in done.stderr and not (tmp_path / "ipcc-play.wav").exists()


def test_without_a_device_one_line_says_so_and_the_wav_has_the_audio(tmp_path, request_file, rendered):
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "empty"), "HOME": str(tmp_path / "empty")}
    done = engine_cli(env, tmp_path, "play", str(request_file), "--keys", KEYS, "-o", "fallback.wav")
    assert done.returncode == 0
    assert done.stderr == ("ipcc-engine: no sound device: PortAudio finds no output device"
                           " — writing fallback.wav instead\n")
    assert np.array_equal(sf.read(tmp_path / "fallback.wav", dtype="int16")[0], rendered[0])
    assert events_of(done.stdout) == rendered[1]


def test_a_vanishing_device_stops_cleanly_and_the_rest_goes_to_the_wav(tmp_path, request_file, rendered):
    with AlsaCapture(tmp_path / "device", vanish_after_s=0.5) as device:
        done = engine_cli(device.env, tmp_path, "play", str(request_file), "--keys", KEYS, "-o", "rest.wav")
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "ipcc-engine: the sound device stopped mid-playback — writing rest.wav instead" in done.stderr
    assert np.array_equal(sf.read(tmp_path / "rest.wav", dtype="int16")[0], rendered[0])
    assert events_of(done.stdout) == rendered[1]
    assert len(device.samples()) < len(rendered[0])


def test_ctrl_c_prints_the_partial_result(tmp_path, request_file):
    with AlsaCapture(tmp_path / "device") as device:
        argv = interruptible_cli("play", str(request_file), "--keys", KEYS, "--voices", VOICES)
        player = subprocess.Popen(argv, env=device.env, cwd=tmp_path,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        # the device has played 1.5 s: the menu (from 1.08 s) is collecting; the caller's key comes at 2.5 s
        bytes_per_s = device.rate_hz * device.channels * 4
        wait_for(lambda: len(device.data) >= 1.5 * bytes_per_s, what="the device playing 1.5 s")
        player.send_signal(signal.SIGINT)
        try:
            out, err = player.communicate(timeout=20)
        finally:
            player.kill()  # never leave a hung player behind
    assert player.returncode == 130 and "Traceback" not in err
    answer, keys, report = events_of(out)
    assert answer["code"] == "000000"
    assert keys["event"] == "ivrreportdtmf" and keys["endReason"] == "hangup" and keys["dtmfCode"] == ""
    assert report["event"] == "multrpt" and report["result"] == "hangup"
    assert out.splitlines()[-1].startswith("# play: interrupted: played ")


def test_a_device_refusing_8khz_plays_the_frames_resampled(tmp_path):
    """No rate conversion in ALSA, the device at 48 kHz: the stream resamples the 8 kHz frames itself."""
    import soxr

    tone = (np.sin(2 * np.pi * 1000 * np.arange(4000) / 8000) * 8000).astype(np.int16)
    np.save(tmp_path / "tone.npy", tone)
    script = ("import numpy as np, sys; from engine.local.playback import play_or_explain;"
              f"print(play_or_explain(np.load({str(tmp_path / 'tone.npy')!r})))")
    with AlsaCapture(tmp_path / "device", rate_hz=48000, channels=2, refuse_8k=True) as device:
        done = subprocess.run([sys.executable, "-c", script], env=device.env, timeout=30, capture_output=True,
                              text=True)
    assert done.returncode == 0, done.stderr
    assert "at 48000 Hz (resampled from 8 kHz)" in done.stdout and "underflows 0" in done.stdout
    stream = soxr.ResampleStream(8000, 48000, 1, dtype="int16", quality="LQ")
    reference = np.concatenate([stream.resample_chunk(tone[i : i + 160]) for i in range(0, len(tone), 160)]
                               + [stream.resample_chunk(tone[:0], last=True)])
    captured = device.samples()
    played = captured[len(captured) - len(reference):]
    assert len(reference) == 6 * len(tone) and not captured[: len(captured) - len(reference)].any()
    assert np.abs(played.astype(int) - reference).max() <= 2


def test_devices_lists_what_portaudio_sees(tmp_path):
    with AlsaCapture(tmp_path / "device") as device:
        listed = engine_cli(device.env, tmp_path, "devices")
    assert listed.returncode == 0 and "default (ALSA): out" in listed.stdout
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "empty"), "HOME": str(tmp_path / "empty")}
    none = engine_cli(env, tmp_path, "devices")
    assert none.returncode == 0 and none.stdout.startswith("no sound devices")


def test_the_queue_waits_for_its_prefill_and_counts_every_silent_frame():
    queue = FrameQueue(capacity_frames=4, prefill_frames=2)
    frame = np.ones(SAMPLES_PER_FRAME, np.int16)
    assert queue.pop() is None and queue.underflows == 0  # not started yet: silence, not an underflow
    assert queue.put(frame) and not queue.ready and queue.put(frame) and queue.ready
    assert queue.pop() is frame and queue.pop() is frame
    assert queue.pop() is None and queue.underflows == 1  # ran dry
    queue.put(frame)
    assert queue.pop() is None and queue.underflows == 2  # refilling: still silence, still counted
    queue.put(frame)
    assert queue.pop() is frame  # primed again; one frame left
    for _ in range(3):
        assert queue.offer(frame)
    assert not queue.offer(frame) and queue.overflows == 1
    assert not queue.put(frame, timeout_s=0.01)  # full: a blocking producer waits
    queue.finish()
    assert [queue.pop() is frame for _ in range(4)] == [True] * 4 and queue.drained and queue.pop() is END
    queue.close()
    assert not queue.put(frame)

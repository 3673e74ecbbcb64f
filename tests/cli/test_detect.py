"""``ipcc-engine detect`` over one file (today's output) and many (one line each, in parallel, errors on their line).

Real files written by libsndfile (PCM, μ-law, A-law, FLAC, 44.1 kHz float), the real command, keys decoded in-band.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import engine.cli.detect as detect_cli
import engine.cli.recordings as recordings
from engine.audio.decode import load_audio
from engine.cli.main import main
from engine.dtmf.channel import detect_keys
from engine.format import SAMPLE_RATE_HZ, samples_to_seconds
from engine.testing.dtmf_cases import recording, write_recordings


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, list[str], str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def formats(tmp_path: Path) -> dict[Path, str]:
    """One file of each kind, with its keys: PCM, μ-law, A-law, FLAC, stereo (keys on channel 0), 44.1 kHz float."""
    rng = np.random.default_rng(30)
    files = {}
    for name, subtype in (("pcm.wav", "PCM_16"), ("ulaw.wav", "ULAW"), ("alaw.wav", "ALAW"), ("f.flac", "PCM_16")):
        samples, _ = recording(rng, 1.5, "5A#", level_dbm0=-15)
        sf.write(tmp_path / name, samples, SAMPLE_RATE_HZ, subtype=subtype)
        files[tmp_path / name] = "5A#"
    samples, _ = recording(rng, 1.0, "07")
    sf.write(tmp_path / "stereo.wav", np.column_stack([samples, samples[::-1]]), SAMPLE_RATE_HZ)
    files[tmp_path / "stereo.wav"] = "07"
    samples, _ = recording(rng, 1.0, "D")
    sf.write(tmp_path / "hifi.wav", soxr.resample(samples / 32768, SAMPLE_RATE_HZ, 44100), 44100, subtype="FLOAT")
    files[tmp_path / "hifi.wav"] = "D"
    return files


def test_one_file_keeps_todays_output(tmp_path, capsys):
    """The line and the JSON are those of ``detect_keys(load_audio(FILE, channel))``, as before, for every format."""
    for path, keys in formats(tmp_path).items():
        events = detect_keys(load_audio(path, channel=0))
        assert "".join(e.key for e in events) == keys, path
        assert run(capsys, "detect", path) == (0, [keys], "")
        status, out, _ = run(capsys, "detect", path, "--json")
        assert status == 0 and out == [json.dumps([{"key": e.key, "start": round(samples_to_seconds(e.start_sample), 4)}
                                                   for e in events])]


def test_no_key_prints_nothing_or_an_empty_list(tmp_path, capsys):
    path = tmp_path / "quiet.wav"
    sf.write(path, recording(np.random.default_rng(31), 2.0, "")[0], SAMPLE_RATE_HZ)
    assert run(capsys, "detect", path) == (0, [], "")
    assert run(capsys, "detect", path, "--json") == (0, ["[]"], "")


def test_one_undecodable_file_is_refused_as_before(tmp_path, capsys):
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    status, out, err = run(capsys, "detect", junk)
    assert status == 2 and out == [] and err.startswith(f"ipcc-engine: {junk}: not decodable audio")
    status, _, err = run(capsys, "detect", next(iter(formats(tmp_path))), "--channel", "3")
    assert status == 2 and "channel 3 does not exist (the audio has 1)" in err


def test_many_files_one_line_each_in_order_errors_on_their_line(tmp_path, capsys):
    files = write_recordings(tmp_path / "calls" / "monday", 30, 0.8, seed=32)
    files |= write_recordings(tmp_path / "calls" / "friday", 25, 0.3, seed=33, subtype="ULAW")
    (tmp_path / "calls" / "friday" / "notes.txt").write_text("not a recording: skipped by name")
    junk = tmp_path / "calls" / "friday" / "broken.wav"
    junk.write_bytes(b"RIFF....WAVE")
    empty = tmp_path / "calls" / "empty.wav"
    sf.write(empty, np.zeros(0, np.int16), SAMPLE_RATE_HZ)
    status, out, err = run(capsys, "detect", "--recursive", tmp_path / "calls")
    want = sorted([(str(p), k) for p, k in files.items()] + [(str(junk), None), (str(empty), None)],
                  key=lambda item: (Path(item[0]).parent.name != "empty.wav", item[0]))
    assert status == 2 and err == "ipcc-engine: 2 of 57 files could not be decoded\n"
    rows = [line.split("\t") for line in out]
    assert [r[0] for r in rows] == [str(empty)] + [p for p, _ in sorted(want[1:])]  # os.walk: files, then folders
    for (path, got), (_, keys) in zip(rows[1:], sorted(want[1:]), strict=True):
        assert got == keys if keys is not None else got.startswith("error: not decodable audio"), path
    assert rows[0][1] == "error: the file holds no audio"
    assert sum(1 for _, k in files.items() if k) > 30  # most files hold keys


def test_json_per_file_has_each_keys_start_level_and_twist(tmp_path, capsys):
    rng = np.random.default_rng(34)
    truth = {}
    for i, (level, twist) in enumerate([(-20.0, 0.0), (-8.0, 6.0), (-25.0, -3.0), (-3.0, 2.0)]):
        samples, starts = recording(rng, 2.0, "3B9", level_dbm0=level, twist_db=twist)
        path = tmp_path / f"k{i}.wav"
        sf.write(path, samples, SAMPLE_RATE_HZ)
        truth[str(path)] = (level, twist, starts)
    status, out, _ = run(capsys, "detect", "--json", *truth)
    assert status == 0 and len(out) == 4
    for line in out:
        record = json.loads(line)
        level, twist, starts = truth[record["file"]]
        assert [k["key"] for k in record["keys"]] == list("3B9")
        for key, start in zip(record["keys"], starts, strict=True):
            assert abs(key["start"] - start / SAMPLE_RATE_HZ) <= 0.01
            assert abs(key["level"] - level) <= 0.5 and abs(key["twist"] - twist) <= 0.5, key


def test_parallel_workers_give_the_serial_output(tmp_path, capsys, monkeypatch):
    """Spawned worker processes (forced even for little work) print what one process prints, in the same order."""
    write_recordings(tmp_path / "a", 70, 0.5, seed=35)
    write_recordings(tmp_path / "b", 80, 0.4, seed=36, subtype="ALAW")
    serial = run(capsys, "detect", "-j", "1", "-r", tmp_path / "a", "-r", tmp_path / "b", "--json")
    pools = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            pools.append(kwargs["mp_context"].get_start_method())  # type: ignore[union-attr]
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountedPool)
    monkeypatch.setattr(detect_cli, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(detect_cli, "FILES_PER_TASK", 16)
    parallel = run(capsys, "detect", "-j", "2", "-r", tmp_path / "a", "-r", tmp_path / "b", "--json")
    assert pools == ["spawn"]
    assert serial == parallel and serial[0] == 0 and len(serial[1]) == 150


def test_the_files_of_a_dead_worker_are_decoded_in_the_parent(tmp_path, capsys, monkeypatch):
    files = write_recordings(tmp_path, 40, 0.3, seed=42)

    class DyingPool(ProcessPoolExecutor):
        def map(self, fn, *iterables, **kwargs):  # type: ignore[no-untyped-def]
            results = super().map(fn, *iterables, **kwargs)
            yield next(results)  # the first task comes back, then the pool breaks
            raise BrokenProcessPool("a worker was killed")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", DyingPool)
    monkeypatch.setattr(detect_cli, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr(detect_cli, "FILES_PER_TASK", 8)
    status, out, err = run(capsys, "detect", "-j", "2", "-r", tmp_path)
    assert status == 0 and err == "ipcc-engine: a worker process died; decoding the remaining files in this one\n"
    assert out == [f"{p}\t{k}" for p, k in sorted((str(p), k) for p, k in files.items())]


def test_long_recordings_are_tasks_of_their_own(monkeypatch):
    monkeypatch.setattr(detect_cli, "FILES_PER_TASK", 3)
    paths = [f"f{i}" for i in range(8)]
    sizes = [10, 10, 10, 10, detect_cli.TASK_BYTES, 10, detect_cli.TASK_BYTES - 5, 10]
    assert detect_cli._tasks(paths, sizes) == [["f0", "f1", "f2"], ["f3"], ["f4"], ["f5"], ["f6"], ["f7"]]


def test_long_files_are_streamed_in_chunks_with_the_same_keys(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(37)
    samples, _ = recording(rng, 12.0, "147*2580369#ABCD", level_dbm0=-18)
    path = tmp_path / "long.wav"
    sf.write(path, samples, SAMPLE_RATE_HZ)
    events = detect_keys(samples)
    monkeypatch.setattr(recordings, "BATCH_MAX_SECONDS", 1.0)
    monkeypatch.setattr(recordings, "CHUNK_SAMPLES", 1000)  # not a multiple of anything the detector uses
    (got,) = recordings.decode_task([str(path)], channel=0)
    assert list(got.events) == events and "".join(e.key for e in events) == "147*2580369#ABCD"
    assert run(capsys, "detect", path, path) == (0, [f"{path}\t147*2580369#ABCD"] * 2, "")
    for name, rate, subtype in (("hifi.wav", 44100, "FLOAT"), ("pcm24.wav", SAMPLE_RATE_HZ, "PCM_24"),
                                ("k16.flac", 16000, "PCM_16")):  # converted chunk by chunk, to the bit
        other = tmp_path / name
        sf.write(other, np.column_stack([np.zeros(len(samples)), samples / 32768]) if rate == SAMPLE_RATE_HZ
                 else soxr.resample(samples / 32768, SAMPLE_RATE_HZ, rate), rate, subtype=subtype)
        channel = 1 if rate == SAMPLE_RATE_HZ else 0
        (got,) = recordings.decode_task([str(other)], channel=channel)
        assert list(got.events) == detect_keys(load_audio(other, channel)) and len(got.events) == 16, name


def test_bad_arguments_are_named(tmp_path, capsys):
    assert run(capsys, "detect")[::2] == (2, "ipcc-engine: no file given (FILE... or --recursive DIR)\n")
    assert run(capsys, "detect", "-j", "0", tmp_path)[::2] == (2, "ipcc-engine: -j/--jobs must be at least 1, got 0\n")
    status, _, err = run(capsys, "detect", "--recursive", tmp_path / "missing")
    assert status == 2 and "--recursive" in err and "not a directory" in err
    (tmp_path / "empty").mkdir()
    assert run(capsys, "detect", "-r", tmp_path / "empty") == (0, [], "ipcc-engine: no audio file found\n")


def test_help_describes_the_command_with_an_example(capsys):
    with pytest.raises(SystemExit) as done:
        main(["detect", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "FILE<TAB>KEYS" in out and "--recursive" in out and "ipcc-engine detect --recursive recordings/" in out


def test_a_progress_bar_on_a_terminal_when_there_are_many_files(tmp_path):
    write_recordings(tmp_path, 40, 0.3, seed=38)
    main_fd, tty_fd = pty.openpty()
    fcntl.ioctl(tty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    done = subprocess.run([sys.executable, "-m", "engine.cli", "detect", "-r", str(tmp_path)], stdout=subprocess.PIPE,
                          stderr=tty_fd, timeout=120, check=False)
    os.close(tty_fd)
    bar = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the terminal's other side is closed: everything was read
            break
        if not chunk:
            break
        bar += chunk
    os.close(main_fd)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 40
    assert b"detect" in bar and b"40/40" in bar and b"file" in bar
    quiet = subprocess.run([sys.executable, "-m", "engine.cli", "detect", "-r", str(tmp_path)], capture_output=True,
                           timeout=120, check=False)
    assert quiet.returncode == 0 and quiet.stderr == b""  # not a terminal: no bar


def test_the_pcm_wav_reader_gives_libsndfiles_samples_or_steps_aside(tmp_path):
    rng = np.random.default_rng(39)
    x = (rng.normal(0, 3000, (4000, 3))).astype(np.int16)
    cases = {"mono.wav": ({}, x[:, :1]), "stereo.wav": ({}, x[:, :2]), "three.wav": ({}, x),  # extensible
             "rf64.wav": ({"format": "RF64"}, x[:, :1]), "ulaw.wav": ({"subtype": "ULAW"}, x[:, :1]),
             "pcm24.wav": ({"subtype": "PCM_24"}, x[:, :1]), "f.flac": ({}, x[:, :1])}
    for name, (kw, data) in cases.items():
        sf.write(tmp_path / name, data, SAMPLE_RATE_HZ, **kw)
    sf.write(tmp_path / "rate.wav", x[:, :1], 16000)
    for name in ("mono.wav", "stereo.wav", "three.wav"):
        for channel in range(sf.info(str(tmp_path / name)).channels):
            got = recordings.read_pcm_wav(str(tmp_path / name), channel, 10**6)
            assert got is not None and got.dtype == np.int16
            assert np.array_equal(got, load_audio(tmp_path / name, channel)), (name, channel)
    for name in ("rf64.wav", "ulaw.wav", "pcm24.wav", "f.flac", "rate.wav"):
        assert recordings.read_pcm_wav(str(tmp_path / name), 0, 10**6) is None, name
    assert recordings.read_pcm_wav(str(tmp_path / "mono.wav"), 1, 10**6) is None  # no such channel
    assert recordings.read_pcm_wav(str(tmp_path / "mono.wav"), 0, 3999) is None  # longer than allowed
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes((tmp_path / "mono.wav").read_bytes()[:-10])
    assert recordings.read_pcm_wav(str(truncated), 0, 10**6) is None
    assert recordings.read_pcm_wav(str(tmp_path / "missing.wav"), 0, 10**6) is None


def test_an_unexpected_failure_is_reported_on_its_files_line_and_logged(tmp_path, capsys, monkeypatch, caplog):
    files = write_recordings(tmp_path, 6, 0.5, seed=41)
    paths = sorted(files)
    read = recordings._read_short

    def flaky_read(path: str, channel: int) -> np.ndarray | None:
        if path == str(paths[2]):
            raise MemoryError("no room")
        return read(path, channel)

    def broken_batch(buffers: list[np.ndarray]) -> list:
        raise RuntimeError("batch bug")

    monkeypatch.setattr(recordings, "_read_short", flaky_read)
    monkeypatch.setattr("engine.dtmf.batch.detect_keys_many", broken_batch)
    status, out, err = run(capsys, "detect", *paths)
    assert status == 2 and err == "ipcc-engine: 1 of 6 files could not be decoded\n"
    assert out[2] == f"{paths[2]}\terror: internal error (MemoryError: no room)"
    assert [line.split("\t")[1] for i, line in enumerate(out) if i != 2] == [files[p] for i, p in enumerate(paths)
                                                                            if i != 2]
    assert "batched decoding failed" in caplog.text and "MemoryError: no room" in caplog.text

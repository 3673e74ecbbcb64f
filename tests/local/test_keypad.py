"""The interactive caller: keys typed on a (pseudo-)terminal become DTMF tones that the detector decodes.

A pty stands in for the person's terminal: the test types on the master side, the keypad reads the slave.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import termios

import numpy as np
import pytest

from engine.core.orders import KeyCollection, MultOrders, Order, PlayKind
from engine.core.reports import KeysReport
from engine.core.timeline import Program
from engine.dtmf.channel import detect_keys
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples
from engine.local.keypad import GAP_MS, TONE_MS, Keypad, key_of
from engine.media.call import Call
from engine.media.loop import MediaLoop
from engine.media.sinks import MemorySink
from engine.testing.alsa import VOICES, AlsaCapture, engine_request, interruptible_cli
from engine.testing.harness import LineReader, wait_for


@pytest.fixture
def terminal():
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def read_seconds(keypad: Keypad, seconds: float) -> np.ndarray:
    frames = seconds_to_samples(seconds) // SAMPLES_PER_FRAME
    return np.concatenate([keypad.read(SAMPLES_PER_FRAME) for _ in range(frames)])


def test_typed_keys_become_tones_the_detector_decodes(terminal):
    master, slave = terminal
    notices: list[str] = []
    with Keypad(slave, notice=notices.append) as keypad:
        os.write(master, b"1a5#x*0\x1b[A9")
        wait_for(lambda: keypad.keys == "1A5#*09")
        audio = read_seconds(keypad, 2.0)
    assert "".join(event.key for event in detect_keys(audio)) == "1A5#*09"
    assert notices == ["ignored 'x': the keys are 0-9 * # A-D",
                       "ignored a special key: the keys are 0-9 * # A-D"]
    # typed at once, the presses follow each other: tone, gap, tone, ...
    starts = [event.start_sample for event in detect_keys(audio)]
    step = seconds_to_samples((TONE_MS + GAP_MS) / 1000)
    assert all(abs(b - a - step) <= 48 for a, b in zip(starts, starts[1:], strict=False))


def test_a_key_is_placed_where_the_caller_is_now(terminal):
    master, slave = terminal
    with Keypad(slave) as keypad:
        silence = read_seconds(keypad, 0.5)
        os.write(master, b"55")
        wait_for(lambda: keypad.keys == "55")
        audio = read_seconds(keypad, 1.0)
    assert not silence.any()
    assert [(e.key, e.start_sample) for e in detect_keys(audio)] == [
        ("5", 0), ("5", seconds_to_samples((TONE_MS + GAP_MS) / 1000))]
    assert np.abs(audio[: seconds_to_samples(TONE_MS / 1000)]).max() > 5000


def test_the_terminal_is_in_cbreak_mode_while_playing_and_restored_after(terminal):
    _, slave = terminal
    before = termios.tcgetattr(slave)
    keypad = Keypad(slave).start()
    during = termios.tcgetattr(slave)
    assert not during[3] & (termios.ICANON | termios.ECHO) and during[3] & termios.ISIG  # Ctrl-C still works
    keypad.close()
    keypad.close()
    assert termios.tcgetattr(slave) == before


def test_keys_from_the_keypad_reach_the_player_through_the_detector(terminal):
    master, slave = terminal
    menu = np.full(seconds_to_samples(2.0), 300, np.int16)
    rule = KeyCollection(max_keys=2, end_key=None, inter_key_samples=seconds_to_samples(3),
                         total_samples=seconds_to_samples(10))
    order = Order(PlayKind.SPEECH, "menu", 1, 0, rule, "d")
    events = []
    with Keypad(slave) as keypad:
        call = Call("app", "call", keypad, MemorySink(), lambda c, e, at: events.append(e))
        call.submit(Program(MultOrders("app", "call", (order,), 1), (menu,)))
        loop = MediaLoop()
        loop.add(call)
        for _ in range(10):
            loop.tick()
        os.write(master, b"4")
        wait_for(lambda: keypad.keys == "4")
        for _ in range(15):
            loop.tick()
        os.write(master, b"7")
        wait_for(lambda: keypad.keys == "47")
        while not call.idle and loop.ticks < 500:
            loop.tick()
    reports = [e for e in events if isinstance(e, KeysReport)]
    assert [(r.digits, r.reason.value) for r in reports] == [("47", "maxRevCnt")]


def test_lowercase_abcd_count_and_nothing_else_does():
    assert [key_of(c) for c in "0123456789*#ABCDabcd"] == list("0123456789*#ABCDABCD")
    assert [key_of(c) for c in "eE+ \n\x03"] == [None] * 6


def test_ctrl_c_during_play_restores_the_terminal(tmp_path):
    """``play`` with the keypad on a pty and no sound device: it renders, so give it a device that paces."""
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    request = engine_request(tmp_path)
    with AlsaCapture(tmp_path / "device") as device:
        argv = interruptible_cli("play", str(request), "--voices", VOICES)
        player = subprocess.Popen(argv, env=device.env, cwd=tmp_path,
                                  stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out = LineReader(player.stdout)
            out.wait_for_line(lambda line: '"code": "000000"' in line, what="the response line")
            wait_for(lambda: not termios.tcgetattr(slave)[3] & termios.ICANON, what="the keypad taking the terminal")
            os.write(master, b"x")
            out.wait_for_line(lambda line: "# ignored 'x'" in line, what="the notice of the ignored key")
            player.send_signal(signal.SIGINT)
            player.wait(timeout=30)
            err = player.stderr.read()
        finally:
            player.kill()  # never leave a hung player behind
    try:
        text = out.text()
        assert player.returncode == 130 and "Traceback" not in err
        assert termios.tcgetattr(slave) == before
        assert "# ignored 'x': the keys are 0-9 * # A-D" in text
        assert text.splitlines()[-1].startswith("# play: interrupted: played ")
    finally:
        os.close(master)
        os.close(slave)

"""``ipcc-engine render``, ``detect`` and ``demo`` end to end: real TTS, real files, keys decoded in-band.

The scripted caller's keys become DTMF tones in the caller's audio and are decoded by the detector; the
tests decode them again from the WAV the command wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.audio.library import VoiceLibrary
from engine.cli.main import main
from engine.dtmf.channel import detect_keys
from engine.dtmf.tones import dtmf_sequence
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, seconds_to_samples, to_int16
from engine.tts.synthesizer import VoiceSettings, synthesizer

VENDOR = Path(__file__).resolve().parents[2] / "engine" / "data" / "vendor-example.json"
APP = "247e35ff320a4142a105024055c367cf"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict], str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    return status, lines, captured.err


def speech(text: str) -> np.ndarray:
    return synthesizer().synthesize(text, VoiceSettings())


def write_request(path: Path, orders: list[dict], playtime: int = 1) -> Path:
    path.write_text(json.dumps({"appId": APP, "callId": "c-1", "playtime": playtime, "orders": orders}))
    return path


def test_vendor_example_without_keys_plays_both_loops_and_times_out(tmp_path, capsys):
    out = tmp_path / "vendor.wav"
    status, lines, _ = run_cli(capsys, "render", str(VENDOR), "-o", str(out))
    assert status == 0
    answer, dtmf, report = lines
    assert answer["code"] == "000000" and answer["appid"] == APP and answer["callid"] == answer["callId"]
    assert dtmf["event"] == "ivrreportdtmf" and dtmf["dtmfCode"] == "" and dtmf["endReason"] == "totalTime"
    assert dtmf["data"] == " userdata3 " and len(dtmf["timeStamp"]) == 17
    assert report == {**report, "event": "multrpt", "result": "complete"} and "dtmfCode" not in report
    tts = len(speech("您的短信剩余15条"))
    prompt = len(VoiceLibrary().load("filepath"))
    one_loop = 3 * tts + 3 * prompt + seconds_to_samples(30)
    audio, rate = sf.read(out, dtype="int16")
    info = sf.info(out)
    assert rate == SAMPLE_RATE_HZ and info.channels == 1 and info.subtype == "PCM_16"
    assert len(audio) == -(-2 * one_loop // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
    # the prompt is heard three times at the start, exactly
    first = speech("您的短信剩余15条")
    assert np.array_equal(audio[tts : 2 * tts], first)


def test_scripted_key_barges_in_and_is_reported(tmp_path, capsys):
    menu = speech("Press one for your balance.")
    request = write_request(tmp_path / "r.json", [
        {"playFlag": 0, "voiceStr": "Press one for your balance.", "playTime": 3, "spaceTime": 2,
         "getkey": 1, "maxRevCnt": 1, "totalTime": 30, "data": "m"}], playtime=2)
    press_s = 0.6
    out = tmp_path / "barge.wav"
    status, lines, _ = run_cli(capsys, "render", str(request), "-o", str(out), "--keys", f"1@{press_s}",
                               "--stereo")
    assert status == 0
    dtmf, report = lines[1], lines[2]
    assert (dtmf["dtmfCode"], dtmf["endReason"], dtmf["data"]) == ("1", "maxRevCnt", "m")
    assert report["result"] == "complete" and report["dtmfCode"] == "1"
    audio, _ = sf.read(out, dtype="int16")
    played, heard = audio[:, 0], audio[:, 1]
    assert [e.key for e in detect_keys(heard)] == ["1"]  # the caller's tone is really in the recording
    onset = seconds_to_samples(press_s)
    latency = len(played) - onset
    assert 0 < latency <= seconds_to_samples(0.06)  # barge-in: the call ends within 60 ms of the tone
    assert np.array_equal(played[:onset], menu[:onset])


def test_key2end_collects_digits_over_two_loops(tmp_path, capsys):
    request = write_request(tmp_path / "r.json", [
        {"playFlag": 1, "voiceStr": "beep.wav", "playTime": 1, "spaceTime": 1, "getkey": 1, "key2End": "#"}],
        playtime=3)
    # beep is 0.5 s, the gap 1 s: loop 1 ends at 1.5 s with no key; keys arrive in loop 2
    status, lines, _ = run_cli(capsys, "render", str(request), "-o", str(tmp_path / "o.wav"),
                               "--keys", "4@1.7,2@2.0,#@2.3")
    assert status == 0
    assert (lines[1]["dtmfCode"], lines[1]["endReason"]) == ("42", "key2End")


def test_caller_audio_from_a_file_any_rate_first_channel(tmp_path, capsys):
    tones = dtmf_sequence("73", tone_ms=80, gap_ms=100, level_dbm0=-12)
    caller = np.zeros(seconds_to_samples(3), dtype=np.float64)
    caller[seconds_to_samples(1) : seconds_to_samples(1) + len(tones)] = tones
    stereo = np.column_stack([to_int16(caller), np.zeros(len(caller), np.int16)])
    import soxr
    wav = tmp_path / "caller.wav"
    sf.write(wav, soxr.resample(stereo.astype(np.float32) / 32768, 8000, 44100), 44100)
    request = write_request(tmp_path / "r.json", [
        {"playFlag": 1, "voiceStr": "beep.wav", "playTime": 2, "spaceTime": 1, "getkey": 1, "maxRevCnt": 2}])
    status, lines, _ = run_cli(capsys, "render", str(request), "-o", str(tmp_path / "o.wav"), "--caller", str(wav))
    assert status == 0 and lines[1]["dtmfCode"] == "73"


@pytest.mark.parametrize("encoding", ["ulaw", "alaw"])
def test_g711_encodings(tmp_path, capsys, encoding):
    out = tmp_path / f"{encoding}.wav"
    request = write_request(tmp_path / "r.json", [{"playFlag": 1, "voiceStr": "beep.wav"}])
    assert run_cli(capsys, "render", str(request), "-o", str(out), "--encoding", encoding)[0] == 0
    info = sf.info(out)
    assert info.subtype == encoding.upper() and info.samplerate == 8000 and info.frames == 4000


def test_request_from_standard_input(tmp_path, repo_root):
    out = tmp_path / "stdin.wav"
    body = json.dumps({"appId": APP, "callId": "c", "orders": [{"playFlag": 1, "voiceStr": "beep.wav",
                                                                  "playTime": "3", "spaceTime": "2"}]})
    done = subprocess.run([sys.executable, "-m", "engine.cli", "render", "-", "-o", str(out)], input=body,
                          capture_output=True, text=True, cwd=repo_root, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["code"] == "000000"
    assert sf.info(out).frames == 44000  # 0.5 s × 3 + 2 s × 2 = 5.5 s, exact to the sample


BAD_BODIES = [
    ("malformed", "{oops", "108100", "body"),
    ("wrong type", json.dumps({"appId": APP, "callId": "c", "orders": "x"}), "108100", "orders"),
    ("negative", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "a", "playTime": -2}]}), "108100", "playTime"),
    ("33 orders", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "a"}] * 33}), "108100", "orders"),
    ("10 MB text", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "x" * 10_000_000}]}), "108100", "voiceStr"),
    ("getkey not last", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "a", "getkey": 1}, {"playFlag": 0, "voiceStr": "b"}]}), "108100", "getkey"),
    ("playFlag 7", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 7, "voiceStr": "a"}]}), "108100", "playFlag"),
    ("key ##", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "a", "getkey": 1, "key2End": "##"}]}), "108100", "key2End"),
    ("passwd", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 1, "voiceStr": "/etc/passwd"}]}), "108100", "voiceStr"),
    ("escape", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 1, "voiceStr": "../../x.wav"}]}), "108100", "voiceStr"),
    ("text as wav", json.dumps({"appId": APP, "callId": "c", "orders": [
        {"playFlag": 1, "voiceStr": "README.md"}]}), "108100", "voiceStr"),
    ("unknown app", json.dumps({"appId": "nobody", "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "a"}]}), "108101", "appId"),
    ("too long", json.dumps({"appId": APP, "callId": "c", "playtime": 100000, "orders": [
        {"playFlag": 1, "voiceStr": "beep.wav"}]}), "108100", "max-seconds"),
]


@pytest.mark.parametrize(("name", "body", "code", "word"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_requests_are_refused_and_nothing_is_written(tmp_path, capsys, name, body, code, word):
    request = tmp_path / "bad.json"
    request.write_text(body)
    out = tmp_path / "never.wav"
    status, lines, _ = run_cli(capsys, "render", str(request), "-o", str(out))
    assert status == 2 and not out.exists() and list(tmp_path.iterdir()) == [request]
    assert lines[0]["code"] == code and word in lines[0]["msg"] and len(lines) == 1
    # the process stays healthy: a good request right after is rendered
    good = write_request(tmp_path / "good.json", [{"playFlag": 1, "voiceStr": "beep.wav"}])
    assert run_cli(capsys, "render", str(good), "-o", str(out))[0] == 0 and out.exists()


@pytest.mark.parametrize("script", ["5@x", "Z@1", "5", "1@-2", "##@1"])
def test_bad_key_scripts_are_named(tmp_path, capsys, script):
    good = write_request(tmp_path / "good.json", [{"playFlag": 1, "voiceStr": "beep.wav"}])
    status, lines, err = run_cli(capsys, "render", str(good), "-o", str(tmp_path / "o.wav"), "--keys", script)
    assert status == 2 and script in err and not lines and not (tmp_path / "o.wav").exists()


def test_detect_prints_keys_and_times(tmp_path, capsys):
    rng = np.random.default_rng(7)
    audio = rng.normal(0, 30, seconds_to_samples(60))
    keys = "159#*0D"
    starts_s = [3.0, 11.25, 20.5, 31.0, 40.125, 50.0, 58.5]
    for key, start_s in zip(keys, starts_s, strict=True):
        tone = dtmf_sequence(key, tone_ms=70, gap_ms=0, level_dbm0=-15)
        at = seconds_to_samples(start_s)
        audio[at : at + len(tone)] += tone
    path = tmp_path / "keys.wav"
    sf.write(path, np.column_stack([to_int16(audio), np.zeros(len(audio), np.int16)]), 8000)
    status = main(["detect", str(path)])
    assert status == 0 and capsys.readouterr().out.strip() == keys
    assert main(["detect", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [k["key"] for k in found] == list(keys)
    assert all(abs(k["start"] - s) <= 0.01 for k, s in zip(found, starts_s, strict=True))


def test_detect_resamples_and_refuses_unreadable(tmp_path, capsys):
    tone = dtmf_sequence("8", tone_ms=100, gap_ms=100, level_dbm0=-10) / 32768
    import soxr
    path = tmp_path / "k16.flac"
    sf.write(path, soxr.resample(tone.astype(np.float32), 8000, 16000), 16000)
    assert main(["detect", str(path)]) == 0 and capsys.readouterr().out.strip() == "8"
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    assert main(["detect", str(junk)]) == 2 and "junk.wav" in capsys.readouterr().err


def test_demo_renders_the_menu_with_a_scripted_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, lines, _ = run_cli(capsys, "demo", "--no-play")
    assert status == 0 and (tmp_path / "ipcc-demo.wav").exists()
    assert lines[0]["code"] == "000000"
    assert (lines[1]["event"], lines[1]["dtmfCode"], lines[1]["endReason"]) == ("ivrreportdtmf", "1", "maxRevCnt")
    heard_keys = [e.key for e in detect_keys(sf.read(tmp_path / "ipcc-demo.wav", dtype="int16")[0])]
    assert heard_keys == []  # the played channel carries prompts only, no tones


def test_output_into_a_missing_folder_is_refused_before_any_success_line(tmp_path, capsys):
    status, lines, err = run_cli(capsys, "render", str(VENDOR), "-o", str(tmp_path / "no" / "such" / "out.wav"))
    assert status == 2 and lines == []
    assert "the folder" in err and "does not exist" in err and not (tmp_path / "no").exists()


def test_the_readme_example_keys_collect_on_the_vendor_example(tmp_path, capsys):
    out = tmp_path / "out.wav"
    status, lines, err = run_cli(capsys, "render", str(VENDOR), "-o", str(out), "--keys", "5@16.0")
    assert status == 0 and "warning" not in err
    _, dtmf, report = lines
    assert dtmf["dtmfCode"] == "5" and dtmf["endReason"] == "maxRevCnt" and report["dtmfCode"] == "5"


def test_keys_before_collection_opens_are_warned_about(tmp_path, capsys):
    out = tmp_path / "out.wav"
    status, lines, err = run_cli(capsys, "render", str(VENDOR), "-o", str(out), "--keys", "5@3.2,#@4.0")
    assert status == 0 and lines[1]["dtmfCode"] == ""  # nothing collected: the menu opens at 14.68 s
    warnings = [line for line in err.splitlines() if line.startswith("ipcc-engine: warning: ")]
    assert len(warnings) == 2 and "--keys 5@3.2: collection opens at 14.68 s" in warnings[0]
    status, lines, err = run_cli(capsys, "render", str(VENDOR), "-o", str(out), "--keys", "1@16")
    assert status == 0 and lines[1]["dtmfCode"] == "1" and "warning" not in err  # after the opening: collected


def test_output_piped_into_head_ends_quietly(tmp_path):
    out = tmp_path / "out.wav"
    render = subprocess.Popen([sys.executable, "-m", "engine.cli", "render", str(VENDOR), "-o", str(out),
                               "--keys", "5@16.0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert render.stdout is not None
    first = render.stdout.readline()
    render.stdout.close()  # as `head -1` does after its line
    _, err = render.communicate(timeout=60)
    assert json.loads(first)["code"] == "000000"
    assert render.returncode == 0 and err.decode() == ""
    assert sf.info(out).frames > 0  # the WAV is written before the event lines


@pytest.mark.parametrize("command", ["render", "demo", "play", "devices"])
def test_every_subcommand_has_a_description_and_an_example(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "\nexample" in text and f"ipcc-engine {command}" in text.split("\nexample")[1]
    assert len(text.split("\n\n")[1]) > 60  # a description paragraph after the usage

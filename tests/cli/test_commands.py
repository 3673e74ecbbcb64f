"""``voices``, ``check-config``, ``detect`` without keys, ``render -o`` into a missing folder, help, pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.cli.help import HELP
from engine.cli.main import build_parser, main
from engine.format import SAMPLE_RATE_HZ

VENDOR = Path(__file__).resolve().parents[2] / "engine" / "data" / "vendor-example.json"


def test_voices_lists_the_voices_with_their_languages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voices", "--json"]) == 0
    voices = {v["voice"]: v for v in json.loads(capsys.readouterr().out)}
    assert "zh" in voices["sit/cmn"]["languages"] and "en-us" in voices["gmw/en-US"]["languages"]
    assert main(["voices", "--language", "zh"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(",zh" in line or " zh" in line for line in lines)


def test_check_config_accepts_the_example_and_names_a_misspelt_key(tmp_path: Path, repo_root: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(repo_root / "apps.example.toml")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and "1390000* -> wav:{called} (busy)" in summary["routes"]
    bad = tmp_path / "apps.toml"
    bad.write_text('[[applications]]\nappId = "a"\ncallbackURL = "http://127.0.0.1:9/"\n', encoding="utf-8")
    assert main(["check-config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "did you mean 'callbackUrl'" in captured.err


def test_detect_prints_nothing_when_there_is_no_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SAMPLE_RATE_HZ, dtype=np.int16), SAMPLE_RATE_HZ)
    assert main(["detect", str(silent)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["detect", str(silent), "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_render_into_a_missing_folder_fails_before_any_success_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(VENDOR), "-o", str(tmp_path / "no" / "such" / "out.wav")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "does not exist" in captured.err and not (tmp_path / "no").exists()


def test_every_sub_command_has_a_description_and_an_example() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    assert set(HELP) | {"serve", "check-config"} == set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert sub.description and ("example:" in text or "examples:" in text) and "ipcc-engine " + name in text, name


@pytest.mark.parametrize("argv", [["voices"], ["render", str(VENDOR), "-o", "{tmp}/out.wav"]])
def test_output_into_a_closed_pipe_ends_quietly(argv: list[str], tmp_path: Path) -> None:
    command = [sys.executable, "-m", "engine.cli", *(arg.format(tmp=tmp_path) for arg in argv)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # as `head` does once it has its lines
    errors = child.stderr.read()
    assert child.wait(60) == 0 and errors == b""

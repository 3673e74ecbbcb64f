"""Secure files: recordings in a per-application folder, 0600 in 0700, never through a symlink or over a file."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.errors import EndpointError
from engine.format import SAMPLE_RATE_HZ
from engine.server.vault import app_folder_name, open_recording, private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_recordings_follow_a_symlink_already_in_the_folder_no_more(tmp_path: Path) -> None:
    # issue 10: "recordings follow a symlink already in the recordings folder"
    target = tmp_path / "outside.txt"
    target.write_text("precious")
    folder = private_dir(tmp_path / "rec" / "app-a")
    (folder / "call.wav").symlink_to(target)
    with pytest.raises(EndpointError, match="exists already|cannot be created") as refused:
        open_recording(tmp_path / "rec", "app-a", "call.wav")
    assert str(tmp_path) not in str(refused.value)  # no absolute path in the message
    assert target.read_text() == "precious"


def test_one_application_cannot_overwrite_anothers_recording(tmp_path: Path) -> None:
    # issue 10: "one application can overwrite another's"
    with open_recording(tmp_path, "app-a", "same.wav") as first:
        first.write(b"a's audio")
    with open_recording(tmp_path, "app-b", "same.wav") as second:
        second.write(b"b's audio")
    assert (tmp_path / "app-a" / "same.wav").read_bytes() == b"a's audio"
    assert (tmp_path / "app-b" / "same.wav").read_bytes() == b"b's audio"
    with pytest.raises(EndpointError, match="exists already"):
        open_recording(tmp_path, "app-a", "same.wav")
    assert (tmp_path / "app-a" / "same.wav").read_bytes() == b"a's audio"


def test_recordings_are_0600_in_0700_folders_and_soundfile_writes_them(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    with open_recording(root, "app-a", "tone.wav") as file, \
            sf.SoundFile(file, "w", SAMPLE_RATE_HZ, 2, "PCM_16", format="WAV") as wav:
        wav.write(np.zeros((160, 2), dtype=np.int16))
    assert _mode(root) == 0o700 and _mode(root / "app-a") == 0o700
    assert _mode(root / "app-a" / "tone.wav") == 0o600
    assert sf.info(str(root / "app-a" / "tone.wav")).frames == 160


@pytest.mark.parametrize("app_id", ["../up", ".hidden", "a/b", "\udc80", ""])
def test_odd_application_ids_get_a_digest_folder(app_id: str) -> None:
    name = app_folder_name(app_id)
    assert name.startswith("app-") and len(name) == 36 and "/" not in name


def test_a_name_with_a_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match="plain file name"):
        open_recording(tmp_path, "app-a", "../x.wav")

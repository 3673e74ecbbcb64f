"""Shared fixtures: the engine's speech cache lives in a per-session temporary folder, never in the home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _speech_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["IPCC_CACHE_DIR"] = str(tmp_path_factory.mktemp("ipcc-cache"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent

"""What every sub-command prints and returns: JSON lines, one-line failures, exit statuses, shared options."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.audio.library import DEFAULT_ROOT

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130


def print_json(obj: Any) -> None:
    """One JSON line on standard output (UTF-8 kept readable), flushed."""
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def fail(message: str) -> int:
    """Print ``ipcc-engine: message`` on standard error; returns :data:`EXIT_REFUSED`."""
    print(f"ipcc-engine: {message}", file=sys.stderr)
    return EXIT_REFUSED


def add_media_options(parser: argparse.ArgumentParser) -> None:
    """``--voices``, ``--config`` and ``--cache``: where a command finds voices, applications and speech."""
    parser.add_argument("--voices", type=Path, default=DEFAULT_ROOT, help="voice library root (default: voices/)")
    parser.add_argument("--config", type=Path, help="configuration file (TOML); default: the demo application")
    parser.add_argument("--cache", type=Path, help="speech cache folder (default: ~/.cache/ipcc-engine)")

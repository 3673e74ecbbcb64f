"""The voices espeak-ng offers, read from its data folder (the ``espeakng-loader`` wheel's), without starting it.

A voice id is a language file's path under ``espeak-ng-data/lang`` (``sit/cmn``, ``gmw/en-us``), matched
case-insensitively as espeak-ng does (``gmw/en-us`` is ``gmw/en-US``), optionally followed by ``+VARIANT``
naming a file of ``espeak-ng-data/voices/!v`` (``gmw/en-us+f3``). Its languages are the file's ``language``
lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice: ``voice_id`` (``sit/cmn``), its ``name`` and its ``languages`` (first: the main one)."""

    voice_id: str
    name: str
    languages: tuple[str, ...]


def data_path() -> Path:
    """The ``espeak-ng-data`` folder of the espeak-ng the engine speaks with."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


def _read_voice(path: Path, voice_id: str) -> Voice:
    name, languages = voice_id, []
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "name":
            name = " ".join(parts[1:])
        elif len(parts) >= 2 and parts[0] == "language":
            languages.append(parts[1])
    return Voice(voice_id, name, tuple(languages))


@cache
def available_voices(root: Path | None = None) -> tuple[Voice, ...]:
    """Every voice under ``root`` (default :func:`data_path`), sorted by id."""
    lang = (root or data_path()) / "lang"
    found = [_read_voice(path, path.relative_to(lang).as_posix()) for path in lang.rglob("*") if path.is_file()]
    return tuple(sorted(found, key=lambda voice: voice.voice_id))


@cache
def variants(root: Path | None = None) -> frozenset[str]:
    """The voice variants (``f3``, ``m1``, ``Alex``, ...) that may follow ``+`` in a voice id."""
    folder = (root or data_path()) / "voices" / "!v"
    return frozenset(path.name for path in folder.iterdir() if path.is_file()) if folder.is_dir() else frozenset()


def unknown_voice(voice_id: str, root: Path | None = None) -> str | None:
    """Why ``voice_id`` is not an available voice (a sentence), or None when it is."""
    base, _, variant = voice_id.partition("+")
    if base.lower() not in {voice.voice_id.lower() for voice in available_voices(root)}:
        return f"{voice_id!r} is not an espeak-ng voice (see `ipcc-engine voices`)"
    if variant and variant not in variants(root):
        return f"{voice_id!r}: the variant {variant!r} is not one of espeak-ng's (see `ipcc-engine voices`)"
    return None

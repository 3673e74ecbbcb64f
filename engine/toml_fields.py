"""Reading a TOML table's fields: known keys only (the nearest spelling named), typed values in bounds.

Every function raises :class:`~engine.errors.ConfigError` naming ``where`` and the key.
"""

from __future__ import annotations

import difflib
from typing import Any

from engine.errors import ConfigError


def check_keys(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    """Refuse a key of ``table`` not in ``known``, naming its nearest valid spelling."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5) or difflib.get_close_matches(
                key.lower(), [k.lower() for k in known], n=1, cutoff=0.5)
            hint = f"; did you mean {next(k for k in known if k.lower() == close[0].lower())!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint} (known: {', '.join(known)})")


def table(raw: Any, known: tuple[str, ...], where: str) -> dict[str, Any]:
    """``raw`` as a table whose keys are all ``known``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    check_keys(raw, known, where)
    return raw


def integer(raw: dict[str, Any], key: str, default: int, minimum: int, where: str) -> int:
    """``raw[key]`` (default ``default``): an integer of at least ``minimum``."""
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}.{key}: must be an integer >= {minimum}")
    return value


def string(raw: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    """``raw[key]`` (default ""): a string, not empty when ``required``."""
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise ConfigError(f"{where}.{key}: must be a {'non-empty ' if required else ''}string")
    return value


def number(raw: dict[str, Any], key: str, default: float, bounds: tuple[float, float], where: str) -> float:
    """``raw[key]`` (default ``default``): a number within ``bounds`` (inclusive)."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{where}.{key}: must be a number from {bounds[0]:g} to {bounds[1]:g}")
    return float(value)


def flag(raw: dict[str, Any], key: str, default: bool, where: str) -> bool:
    """``raw[key]`` (default ``default``): true or false."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false")
    return value


def seconds(raw: dict[str, Any], key: str, default: float, where: str) -> float:
    """``raw[key]`` (default ``default``): seconds, more than 0 and at most a day."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
        raise ConfigError(f"{where}.{key}: must be seconds, more than 0 and at most 86400")
    return float(value)

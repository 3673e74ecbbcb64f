"""The engine's configuration: the applications (TOML), with the contract's demo application built in.

A configuration file looks like::

    [[applications]]
    appId = "247e35ff320a4142a105024055c367cf"
    callbackUrl = "http://127.0.0.1:9000/events"   # optional; without it events go to the event log only
    queueLimit = 8                                   # pending multOrders requests per call (108102 beyond)
    voice = "sit/cmn"                                # optional; default: chosen from the text
    rate = 175                                       # words per minute
    volume = 1.0                                     # 0..1
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, UnknownAppError
from engine.tts.synthesizer import VoiceSettings

DEMO_APP_ID = "247e35ff320a4142a105024055c367cf"
DEFAULT_QUEUE_LIMIT = 8


@dataclass(frozen=True)
class Application:
    """One application: where its events go, how its calls speak, how many requests a call may queue."""

    app_id: str
    callback_url: str | None = None
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    queue_limit: int = DEFAULT_QUEUE_LIMIT


@dataclass(frozen=True)
class Config:
    """The configured applications by ``appId``."""

    applications: dict[str, Application]

    def application(self, app_id: str) -> Application:
        """The application ``app_id``; :class:`UnknownAppError` (``108101``) when it is not configured."""
        try:
            return self.applications[app_id]
        except KeyError:
            raise UnknownAppError(f"appId: {app_id!r} is not a configured application") from None


def default_config() -> Config:
    """The built-in configuration: the contract's demo application, events to the event log only."""
    return Config({DEMO_APP_ID: Application(DEMO_APP_ID)})


def _application(raw: Any, where: str) -> Application:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    app_id = raw.get("appId")
    if not isinstance(app_id, str) or not app_id:
        raise ConfigError(f"{where}.appId: must be a non-empty string")
    callback = raw.get("callbackUrl")
    if callback is not None and (not isinstance(callback, str) or not callback.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}.callbackUrl: must be an http:// or https:// URL")
    limit = raw.get("queueLimit", DEFAULT_QUEUE_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigError(f"{where}.queueLimit: must be an integer >= 1")
    try:
        voice = VoiceSettings(voice=raw.get("voice"), rate_wpm=raw.get("rate", VoiceSettings.rate_wpm),
                              volume=raw.get("volume", VoiceSettings.volume))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return Application(app_id, callback, voice, limit)


def load_config(path: str | Path | None) -> Config:
    """Read a TOML configuration; ``None`` gives :func:`default_config`."""
    if path is None:
        return default_config()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    apps = raw.get("applications")
    if not isinstance(apps, list) or not apps:
        raise ConfigError(f"{path}: needs at least one [[applications]] table")
    applications: dict[str, Application] = {}
    for i, item in enumerate(apps):
        app = _application(item, f"{path}: applications[{i}]")
        if app.app_id in applications:
            raise ConfigError(f"{path}: applications[{i}].appId {app.app_id!r} appears twice")
        applications[app.app_id] = app
    return Config(applications)

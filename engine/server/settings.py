"""What ``serve`` is configured with (:class:`ServerSettings`) and the per-application delivery concurrency."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.audio.library import DEFAULT_ROOT
from engine.config import Config, default_config
from engine.server.auth import AuthSettings
from engine.server.delivery import DEFAULT_CONCURRENCY, RetryPolicy
from engine.server.limits import GuardSettings


@dataclass
class ServerSettings:
    """Everything ``serve`` is configured with.

    Paths default to the current folder's ``recordings/`` and ``state/`` (the event log); ``cache``: the speech
    cache's folder (None: the configuration's ``[server] cache``, else the speech cache's default).
    ``max_body_bytes``, ``max_upload_bytes``, ``max_calls`` and ``delivery_concurrency`` (one number, or by
    appId) override the configuration's ``[limits]`` (None: the configuration decides). ``prepare_workers``:
    threads checking and preparing requests. ``guard``: per-application limits, call timeouts, admission and HTTP
    timeouts; ``auth``: per-application credentials (none by default).
    """

    config: Config = field(default_factory=default_config)
    voices: Path = DEFAULT_ROOT
    recordings: Path = Path("recordings")
    state_dir: Path = Path("state")
    cache: Path | None = None
    max_body_bytes: int | None = None
    max_upload_bytes: int | None = None
    max_calls: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fsync: bool = False
    delivery_concurrency: int | dict[str, int] | None = None  # events in flight per application
    prepare_workers: int = 4
    guard: GuardSettings = field(default_factory=GuardSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)


def delivery_concurrency(config: Config, given: int | dict[str, int] | None = None) -> int | dict[str, int]:
    """Events in flight per application: ``given``, else each application's own, else ``[limits]``'s."""
    if given is not None:
        return given
    default = config.limits.delivery_concurrency or DEFAULT_CONCURRENCY
    return {app_id: app.delivery_concurrency or default for app_id, app in config.applications.items()}

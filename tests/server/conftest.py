"""Fixtures of the server tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.testing.platform import Platform, platform_server
from engine.testing.receivers import ScriptedReceiver
from engine.testing.server import LiveServer


@pytest.fixture()
def receiver() -> Iterator[ScriptedReceiver]:
    """A scripted callback receiver that acknowledges everything (``test_delivery`` has its own ``receiver``)."""
    rx = ScriptedReceiver()
    yield rx
    rx.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Platform]:
    """A server as the platform runs it (:func:`engine.testing.platform.platform_server`), one per test module."""
    with platform_server(tmp_path_factory.mktemp("platform"), repo_root / "voices") as live:
        yield live


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client of the module's own ``server`` fixture (a :class:`LiveServer`)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http

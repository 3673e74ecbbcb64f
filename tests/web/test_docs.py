"""``/docs`` renders in a real browser with every request to the engine itself (no CDN, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.server.app import ServerSettings, create_app
from engine.testing.alsa import VOICES
from engine.testing.browser import chromium, chromium_available, wait_page
from engine.testing.server import FakeSpeaker, LiveServer

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium and playwright")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = ServerSettings(voices=Path(VOICES), recordings=tmp_path / "rec", state_dir=tmp_path / "state")
    live = LiveServer(create_app(settings, speaker=FakeSpeaker()))
    yield live
    live.close()


def test_the_api_docs_render_offline(server: LiveServer, tmp_path: Path) -> None:
    with chromium() as context:
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server.url + "/docs")
        operations = wait_page(page, "document.querySelector('.swagger-ui .info .title')?.textContent"
                                     ".includes('ipcc-engine') && document.querySelectorAll('.opblock').length")
        page.screenshot(path=str(tmp_path / "docs.png"))
    assert operations >= 7  # multOrders, play, outCall, stoPlay, disConnect, events, status
    outside = [url for url in requested if not url.startswith(server.url) and not url.startswith("data:")]
    assert outside == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested)

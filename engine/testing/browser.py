"""Browser harness: Debian's Chromium driven by Playwright (which cannot download its own browsers here).

Chromium runs headless with a fresh profile, no sandbox (root), no background traffic, autoplay allowed, and a
fake microphone (a WAV file, or Chromium's beep) accepted without asking.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.config import DEMO_APP_ID
from engine.testing.server import CALM_GUARD

CHROMIUM = "/usr/lib/chromium/chromium"
#: ``[limits]`` of an admission that takes calls whatever the load: :data:`engine.testing.server.CALM_GUARD`'s.
CALM_LIMITS = (f"[limits]\nadmitCpuShare = {CALM_GUARD.max_cpu_share!r}\nadmitRealTime = {CALM_GUARD.min_real_time!r}\n"
               f"admitLatenessS = {CALM_GUARD.max_lateness_s!r}\n")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--headless", "--autoplay-policy=no-user-gesture-required",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def chromium_available() -> bool:
    """True when Debian's Chromium and Playwright are installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


@contextlib.contextmanager
def chromium(mic_wav: Path | None = None) -> Iterator[Any]:
    """A Playwright browser context of Chromium (``mic_wav``: the fake microphone's audio), closed on exit."""
    from playwright.sync_api import sync_playwright

    args = list(FLAGS)
    if mic_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={mic_wav}")
    profile = tempfile.mkdtemp(prefix="ipcc-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=args, ignore_default_args=["--mute-audio"])
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_page(page: Any, expression: str, timeout_s: float = 20.0) -> Any:
    """Wait until ``expression`` (JavaScript) is truthy in ``page``; returns its value."""
    handle = page.wait_for_function(expression, polling=50, timeout=timeout_s * 1000)
    return handle.json_value()


def open_phone(context: Any, base_url: str, app_id: str, secret: str = "", extra: str = "") -> tuple[Any, str]:
    """A new ``/phone`` page of ``app_id`` that pressed "call me" and is connected: (page, callId).

    ``extra``: more of the page's query (``"&prefill=3"``).
    """
    return open_phones(context, base_url, app_id, 1, secret, extra)[0]


def open_phones(context: Any, base_url: str, app_id: str, count: int, secret: str = "",
                extra: str = "") -> list[tuple[Any, str]]:
    """``count`` new ``/phone`` pages (as :func:`open_phone`), all calling at once, each once connected."""
    pages = [context.new_page() for _ in range(count)]
    for page in pages:
        page.goto(f"{base_url}/phone?appId={app_id}&secret={secret}{extra}")
        page.click("#call")
    for page in pages:
        try:
            wait_page(page, "window.phone.connected && window.phone.frames > 25")
        except Exception as exc:
            state = page.evaluate("[window.phone.callId, window.phone.connected, "
                                  "window.phone.frames, window.phone.ctx && window.phone.ctx.state, "
                                  "document.getElementById('state').textContent]")
            raise AssertionError(f"the phone page did not connect: {state}") from exc
    return [(page, page.evaluate("window.phone.callId")) for page in pages]


@contextlib.contextmanager
def serve_process(folder: Path, *options: str) -> Iterator[str]:
    """``ipcc-engine serve`` in its own process on a free loopback port (its files in ``folder``): its base URL.

    Its own process, so that the media thread shares no interpreter lock with the test and its browser client.
    Unless ``options`` name a ``--config``, it serves the demo application with an admission that takes calls
    whatever the machine's load (:data:`CALM_LIMITS`: the pages are tested here, not admission; a loaded test
    machine would otherwise refuse their calls with 108102). Yields once ``/ipcc/status`` answers.
    """
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    if "--config" not in options:
        (folder / "calm.toml").write_text(f'{CALM_LIMITS}\n[[applications]]\nappId = "{DEMO_APP_ID}"\n')
        options = ("--config", str(folder / "calm.toml"), *options)
    log = (folder / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--state", str(folder / "state"),
         "--recordings", str(folder / "rec"), "--log-level", "warning", *options],
        cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ipcc/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {(folder / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()

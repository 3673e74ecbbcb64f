"""What the media thread tells a watcher of its calls (the calls page's book is one)."""

from __future__ import annotations

from typing import Any

from engine.media.call import Call


class CallWatcher:
    """Told on the media thread when each call starts ticking and when it ended (the calls page's book).

    A watcher must not block, nor touch the media loop; what it raises is logged and the thread carries on.
    """

    def call_started(self, call: Call, endpoint: Any) -> None:
        """``call`` starts ticking on ``endpoint`` (after the endpoint's own ``attach``)."""

    def call_ended(self, call: Call, endpoint: Any) -> None:
        """``call`` ended: its sink (the recording) is closed."""

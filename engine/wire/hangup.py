"""The hang-up event as the platform sends it: ``calldisconnectrpt`` (appId, callId, reason, timeStamp)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.wire.events import vendor_timestamp

RESTART = "restart"
"""``reason`` of a call that was live when the engine stopped without hanging it up (``kill -9``, a crash)."""


def hangup_body(app_id: str, call_id: str, reason: str, moment: datetime) -> dict[str, Any]:
    """The ``calldisconnectrpt`` body of ``call_id``, ended for ``reason``, stamped with ``moment``."""
    return {"event": "calldisconnectrpt", "appId": app_id, "callId": call_id, "reason": reason,
            "timeStamp": vendor_timestamp(moment)}

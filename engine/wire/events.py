"""Events as the contract sends them: ``ivrreportdtmf`` and ``multrpt`` bodies, with vendor timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.core.reports import KeysReport, PlayerEvent, RequestReport


def vendor_timestamp(moment: datetime) -> str:
    """``yyyyMMddHHmmssSSS`` local time, the vendor's ``timeStamp`` format."""
    return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"


def event_body(event: PlayerEvent, app_id: str, call_id: str, moment: datetime) -> dict[str, Any]:
    """The JSON body of ``event`` for the application's callback, stamped with ``moment``."""
    if isinstance(event, KeysReport):
        return {
            "event": "ivrreportdtmf",
            "appId": app_id,
            "callId": call_id,
            "dtmfCode": event.digits,
            "endReason": event.reason.value,
            "data": event.data,
            "timeStamp": vendor_timestamp(moment),
        }
    assert isinstance(event, RequestReport)
    body: dict[str, Any] = {
        "event": "multrpt",
        "appId": app_id,
        "callId": call_id,
        "result": event.result.value,
    }
    if event.digits is not None:
        body["dtmfCode"] = event.digits
    body["timeStamp"] = vendor_timestamp(moment)
    return body

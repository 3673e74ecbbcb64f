"""The recovery after a restart: outcomes for the calls and requests a crash left open in the journal.

Each request without an outcome gets ``multrpt`` ``error``; then its call gets ``calldisconnectrpt`` with
reason ``restart``. The records are numbered after the log's last ``seq`` and written before anything new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from engine.core.reports import RequestReport, Result
from engine.wire.call_events import restart_disconnect_report
from engine.wire.events import event_body

log = logging.getLogger("engine.server.delivery")  # the delivery's log, as before the split


def recovery_records(open_calls: Iterable[tuple[str, str, int]], last_seq: int,
                     moment: datetime) -> list[dict[str, Any]]:
    """The event records for ``open_calls`` (``(app_id, call_id, open requests)``), numbered from ``last_seq + 1``.

    ``moment`` stamps the events. A warning says how many calls and requests were open (none: nothing logged).
    """
    records = []
    seq = last_seq
    for app_id, call_id, open_requests in open_calls:
        bodies = [event_body(RequestReport(Result.ERROR, None, 0), app_id, call_id, moment)] * open_requests
        for body in [*bodies, restart_disconnect_report(app_id, call_id, moment)]:
            seq += 1
            records.append({"seq": seq, "appId": app_id, "callId": call_id, "event": body})
    if records:
        log.warning("restart: %d calls were live; their %d requests end with multrpt error",
                    sum(1 for r in records if r["event"]["event"] == "calldisconnectrpt"),
                    sum(1 for r in records if r["event"]["event"] == "multrpt"))
    return records

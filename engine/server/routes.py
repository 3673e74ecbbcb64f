"""Phone numbers to endpoints: the configuration's route table (first match wins), then the endpoint factories.

``called`` (``outCall``, ``callNotifyV2``, ``transfer``) is either an endpoint of a registered scheme — today's
explicit names (``wav:NAME``, ``null``, ``speaker``) and those other modules register (``sip:...``) — or a
phone number (digits, optionally a leading ``+``, up to 32 characters) looked up in the route table. A route's
``endpoint`` template gets ``{called}``, ``{caller}`` and ``{callId}`` (characters a recording name cannot hold
become ``_``); a ``wav:`` recording, routed or not, goes into the application's own folder of the recordings
folder (``<recordings>/<app>/...``, :func:`app_folder`, opened by :func:`engine.server.vault.open_recording`).
The route's ``keys`` / ``callerWav`` are the caller's side unless the request gives its own. A route whose
``outcome`` is not ``answer`` makes no endpoint: the attempt fails with that outcome (``callstatrpt``
``ansCode``), so an application's failure paths can be tested.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from engine.config import Config, Outcome
from engine.errors import EndpointError
from engine.server.endpoints import Endpoint, EndpointContext, OutCallSpec, is_endpoint, make_endpoint, schemes
from engine.server.vault import app_folder_name
from engine.wire.call_events import BUSY, NO_ANSWER, REJECTED, UNREACHABLE

_NUMBER = re.compile(r"\+?[0-9]{1,32}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: ``ansCode`` of each failing outcome.
ANS_CODES = {Outcome.BUSY: BUSY, Outcome.NO_ANSWER: NO_ANSWER, Outcome.REJECT: REJECTED,
             Outcome.UNREACHABLE: UNREACHABLE}


@dataclass
class Connection:
    """Where a call attempt goes: an endpoint (answered), or a failing outcome with its ``ans_code``."""

    called: str
    endpoint: Endpoint | None
    ans_code: int = 0


def app_folder(app_id: str) -> str:
    """The application's folder name (recordings, uploads): :func:`engine.server.vault.app_folder_name`."""
    return app_folder_name(app_id)


def is_number(called: str) -> bool:
    """True when ``called`` is a phone number the route table is asked about."""
    return _NUMBER.fullmatch(called) is not None


def connect(spec: OutCallSpec, call_id: str, config: Config, context: EndpointContext,
            called: str | None = None) -> Connection:
    """The endpoint of ``called`` (default ``spec.called``): explicit, or routed; raises ``EndpointError``."""
    target = spec.called if called is None else called
    if is_endpoint(target):
        return Connection(target, make_endpoint(spec, context, target))
    if not is_number(target):
        raise EndpointError("called", f"{target[:40]!r} is neither a phone number (digits, optional leading +) "
                                      f"nor an endpoint (schemes: {', '.join(schemes())})")
    route = config.route(target)
    if route is None:
        raise EndpointError("called", f"no route for the number {target!r} in the configuration's route table")
    if route.outcome is not Outcome.ANSWER:
        return Connection(target, None, ANS_CODES[route.outcome])
    values = {"called": target, "caller": spec.caller, "callId": call_id}
    endpoint_name = route.endpoint.format_map({k: _UNSAFE.sub("_", v) for k, v in values.items()})
    routed = dataclasses.replace(spec, keys=spec.keys or ("" if spec.caller_wav else route.keys),
                                 caller_wav=spec.caller_wav or ("" if spec.keys else route.caller_wav))
    return Connection(target, make_endpoint(routed, context, endpoint_name))

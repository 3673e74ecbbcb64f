"""The HTTP API's bodies as pydantic models — for the OpenAPI document only.

Bodies are parsed by :mod:`engine.wire.request` from the raw bytes (the contract's quirks: keys with white space
such as ``" data "``, integers as decimal strings), so these models describe the wire; they never validate it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

IntOrString = int | str


class OrderFields(BaseModel):
    """One play order (multOrders ``orders[i]``, or the body of ``play`` with ``appId``/``callId``)."""

    playFlag: IntOrString = Field(description="0: voiceStr is text to speak; 1: a file of the voice library")
    voiceStr: str = Field(description="the text (<= 1000 characters) or the file's path in the voice library")
    playTime: IntOrString | None = Field(1, description="how many times the order is played (>= 1)")
    spaceTime: IntOrString | None = Field(0, description="seconds of silence between plays; getkey: longest "
                                                         "wait between keys once the first arrived")
    getkey: IntOrString | None = Field(0, description="1: collect keys during this order (last order only)")
    maxRevCnt: IntOrString | None = Field(0, description="getkey: collection ends after this many keys")
    key2End: str | None = Field("", description="getkey: the key (0-9 * # A-D) that ends collection")
    totalTime: IntOrString | None = Field(0, description="getkey: seconds collection stays open at most")
    data: str | None = Field(None, description="user data (<= 1024 characters) echoed in the events")


class MultOrdersBody(BaseModel):
    """``POST /ipcc/call/multOrders``."""

    appId: str = Field(description="a configured application (else 108101)")
    callId: str = Field(description="a live call of that application (else 108105)")
    playtime: IntOrString | None = Field(1, description="how many times the whole order list is played")
    orders: list[OrderFields] = Field(description="1 to 32 orders, played in sequence")


class PlayBody(OrderFields):
    """``POST /ipcc/call/play``: one order's fields plus the ids (a one-order multOrders)."""

    appId: str
    callId: str


class OutCallBody(BaseModel):
    """``POST /ipcc/call/outCall``: create a call on the endpoint named by ``called``."""

    appId: str
    called: str = Field(description="the phone endpoint: 'wav:NAME' (recorded to <recordings>/NAME.wav), "
                                    "'null' (plays into nothing), 'speaker' (when available)")
    caller: str | None = Field(None, description="the calling number (kept, not used)")
    data: str | None = Field(None, description="user data (kept, not used)")
    keys: str | None = Field(None, description="the caller's key script 'KEY@SECONDS,...', seconds from the "
                                               "moment each multOrders request starts playing")
    callerWav: str | None = Field(None, description="the caller's audio: a file in the voice library")


class CallNotifyBody(BaseModel):
    """``POST /ipcc/call/callNotifyV2``: call a number, play ``voices`` in order, hang up."""

    appId: str
    called: str = Field(description="a phone number (the route table) or an endpoint such as 'wav:NAME'")
    caller: str | None = Field(None, description="the calling number")
    voices: list[dict[str, Any]] = Field(description="1 to 32 {voice, flag}: flag 0 voice is text, 1 a file")
    data: str | None = Field(None, description="user data echoed in the events")


class TransferBody(BaseModel):
    """``POST /ipcc/call/transfer``: play ``fileName``, then move the call to ``called``."""

    appId: str
    callId: str
    called: str = Field(description="the number (or endpoint) the call moves to")
    fileName: str | None = Field(None, description="a file of the voice library played before the transfer")
    data: str | None = None


class ReplyBody(BaseModel):
    """``POST /ipcc/call/reply``: accept (``ansCode`` 0) or reject (1) an incoming call."""

    appId: str
    callId: str
    ansCode: IntOrString


class MessageBody(BaseModel):
    """``POST /ipcc/call/message``: voicemail: a prompt, then the caller recorded until ``key2Stop``."""

    appId: str
    callId: str
    playFlag: IntOrString = Field(description="0: voiceStr is text; 1: a file of the voice library")
    voiceStr: str
    key2Stop: str | None = Field("#", description="the key that ends the message")
    maxTime: IntOrString | None = Field(60, description="seconds the message may last at most (1-600)")
    data: str | None = None


class CallBody(BaseModel):
    """``POST /ipcc/call/stoPlay`` and ``POST /ipcc/call/disConnect``."""

    appId: str
    callId: str


class IpccResponse(BaseModel):
    """Every POST's answer (always HTTP 200).

    ``code``: 000000 accepted, 108100 bad body, 108101 unknown application, 108102 queue full, 108105 unknown call,
    108104 internal failure.
    """

    code: str
    msg: str
    appId: str
    callId: str
    appid: str
    callid: str
    newCallId: str | None = Field(None, description="transfer: the new call's id")
    fileInfo: str | None = Field(None, description="file upload: the path to use as voiceStr (playFlag 1)")


class EventsResponse(BaseModel):
    """``GET /ipcc/events``: the call's ``ivrreportdtmf``/``multrpt`` bodies in order."""

    code: str
    msg: str
    callId: str
    events: list[dict[str, Any]]


class StatusResponse(BaseModel):
    """``GET /ipcc/status``: live calls, media-loop timing, delivery counters."""

    calls: dict[str, int]
    pacer: dict[str, float]
    delivery: dict[str, int]


def upload_body() -> dict[str, Any]:
    """``openapi_extra`` of ``POST /ipcc/manager/file``: a multipart form with ``appId``, ``file``, ``filename``."""
    schema = {"type": "object", "required": ["appId", "file"], "properties": {
        "appId": {"type": "string"}, "file": {"type": "string", "format": "binary"},
        "filename": {"type": "string", "description": "the name to store it under (default: the file's own)"}}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON request body (its ``$defs`` inlined)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}

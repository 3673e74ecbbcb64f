"""Errors carry the contract's response code and mix in the builtin they resemble."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's errors; ``code`` is the contract's response code (``108104``: internal failure)."""

    code = "108104"


class RequestError(EngineError, ValueError):
    """The request breaks a rule of the contract (``108100``); ``field`` names the field that did."""

    code = "108100"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class MediaError(RequestError):
    """A ``playFlag`` 1 file is outside the voice library, missing or not decodable audio (``108100``)."""


class UnknownAppError(EngineError, LookupError):
    """``appId`` is not a configured application (``108101``)."""

    code = "108101"


class UnknownCallError(EngineError, LookupError):
    """``callId`` is not a live call of that application (``108105``)."""

    code = "108105"


class QueueFullError(EngineError, RuntimeError):
    """The call's order queue is full (``108102``)."""

    code = "108102"

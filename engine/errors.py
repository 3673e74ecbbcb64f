"""Every response code of the contract and every exception of the engine.

Errors carry the contract's response code and mix in the builtin they resemble. Errors that never reach the
wire (configuration, command line, sound device) have no code.
"""

from __future__ import annotations

OK = "000000"
"""The request was accepted."""
BAD_REQUEST = "108100"
"""A field breaks a rule of the contract; the message names the field."""
UNKNOWN_APP = "108101"
"""``appId`` is not a configured application."""
BUSY = "108102"
"""The call's queue is full, or the engine has no room for more work."""
INTERNAL = "108104"
"""The engine failed inside (a bug, a full disk): logged, the request is not played."""
UNKNOWN_CALL = "108105"
"""``callId`` is not a live call of that application."""


class EngineError(Exception):
    """Base of the engine's errors; ``code`` is the contract's response code (``108104``: internal failure)."""

    code = INTERNAL


class RequestError(EngineError, ValueError):
    """The request breaks a rule of the contract (``108100``); ``field`` names the field that did."""

    code = BAD_REQUEST

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class MediaError(RequestError):
    """A ``playFlag`` 1 file is outside the voice library, missing or not decodable audio (``108100``)."""


class UnknownAppError(EngineError, LookupError):
    """``appId`` is not a configured application (``108101``)."""

    code = UNKNOWN_APP


class UnknownCallError(EngineError, LookupError):
    """``callId`` is not a live call of that application (``108105``)."""

    code = UNKNOWN_CALL


class QueueFullError(EngineError, RuntimeError):
    """The call's order queue is full (``108102``)."""

    code = BUSY


class ConfigError(ValueError):
    """The configuration file is not valid; the message names the file and the field."""


class SpeechError(EngineError):
    """Speech synthesis failed inside the engine (``108104``)."""


class SpeechInputError(SpeechError, RequestError):
    """The caller's text or voice settings are unusable (``108100``); a ``ValueError`` naming ``field``."""


class EspeakVersionError(SpeechError):
    """The espeak-ng library is missing, older than 1.52 or not the one pyttsx3 uses (``108104``)."""


class ScriptError(ValueError):
    """A ``--keys`` script item is malformed; the message names it."""


class AudioDecodeError(ValueError):
    """A file is not readable audio; the message names the file."""


class SetupError(ValueError):
    """A command-line option is unusable (not a request error): the message names it."""


class NoDeviceError(RuntimeError):
    """No usable sound device (or no PortAudio): the message is one line, fit for the user."""


class EndpointError(RequestError):
    """``called`` or the caller fields are unusable; the message names the field (``108100``)."""


class BusyError(EngineError, RuntimeError):
    """A limit of the engine or of the application is reached (``108102``): the message names the limit."""

    code = BUSY


class AuthError(EngineError, PermissionError):
    """The request is not the application's: address not allowed or signature missing, wrong or stale (``108101``).

    The message names the header or the address rule.
    """

    code = UNKNOWN_APP

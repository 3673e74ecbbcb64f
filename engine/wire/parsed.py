"""A body's text parsed once: the admission's ids and the action's fields from one JSON decoding.

The HTTP edge reads a POST's ids (``appId``, ``callId``: authentication, rate) before the action decodes the
same body within the configuration's JSON limits; :func:`parse_once` decodes it once for both when both would
read it alike, and :class:`ParsedText` carries the result to :func:`engine.wire.request.decode_body`.
"""

from __future__ import annotations

import codecs

from engine.errors import RequestError
from engine.wire.body import Fields, JsonLimits, charset_of, parse_json

DEFAULT_LIMITS = JsonLimits()


class ParsedText(str):
    """A body's text that carries its decoding within ``limits``: the :class:`Fields`, or the exception it raised.

    :func:`decode_body` (within the same limits) and :func:`ids_of` answer from it without parsing the text again;
    everywhere else it is the text. Made by :func:`parse_once`.
    """

    limits: JsonLimits
    fields: Fields | None
    error: Exception | None


def parse_once(raw: bytes, content_type: str | None, limits: JsonLimits) -> ParsedText | None:
    """``raw``'s text decoded once within ``limits``, for ``decode_body(text, limits)`` and :func:`ids_of` ``(raw)``.

    Only when the text is what both read: UTF-8 by the ``Content-Type`` (no charset, or UTF-8), no BOM, valid
    UTF-8; otherwise None (each decodes on its own, as before; a charset the ``Content-Type`` names wrongly is
    refused by the answer's checks, in their order). :func:`ids_of` reads the ids from it when ``limits`` are
    the default ones (it decodes within those), else parses on its own.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return None
    try:
        if charset_of(content_type) not in (None, "utf-8"):
            return None
        text = ParsedText(raw.decode("utf-8"))
    except (RequestError, UnicodeDecodeError):
        return None
    text.limits, text.fields, text.error = limits, None, None
    try:
        text.fields = parse_fields(text, limits)
    except Exception as exc:  # raised again by every decode_body of it, as parsing would raise it
        text.error = exc
    return text


def parse_fields(text: str, limits: JsonLimits) -> Fields:
    """``text`` decoded within ``limits``; ``RequestError`` unless it is a JSON object (and within them)."""
    value = parse_json(text, limits)
    if not isinstance(value, Fields):
        raise RequestError("body", f"must be a JSON object, got {type(value).__name__}")
    return value

r"""A request body from bytes to fields: its charset, bounded JSON, field names matched as real clients spell them.

* **Charset.** The ``Content-Type``'s ``charset`` decodes the bytes: UTF-8 (the default; a BOM is skipped),
  GBK / GB2312 / GB18030 (read as GB18030, their superset) and ISO-8859-1 (also ``latin-1``, ``us-ascii``). A
  body without a charset that is not UTF-8 is read as ISO-8859-1, what Java clients that post without a
  charset send. Any other charset is refused (``108100`` naming ``Content-Type``).
* **Bounded JSON.** Nesting deeper than ``max_depth`` (default 32) and more than ``max_keys`` object keys in all
  (default 10,000) are refused before or while parsing, without recursion; a JSON integer of more than 4300
  digits (Python's bound on ``int()``) is refused, one of more than ``MAX_DIGITS`` is refused by the field
  reading it; ``NaN``/``Infinity`` are not JSON; a string holding a lone surrogate (``"\udc80"``) is refused
  naming its field.
* **Field names.** Keys are trimmed of white space and matched case-insensitively (:class:`Fields`):
  ``getKey`` is ``getkey``, ``callid`` is ``callId``. Two keys that are equal after trimming and case folding
  are refused as a duplicate (``{"callId": "a", "callId": "b"}`` too).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import RequestError

#: Integers longer than this many digits are kept as :class:`HugeNumber` (never converted: no quadratic cost).
MAX_DIGITS = 40
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_KEYS = 10_000
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)\"?", re.IGNORECASE)
_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030",
             "cp936": "gb18030", "iso-8859-1": "latin-1", "iso8859-1": "latin-1", "latin-1": "latin-1",
             "latin1": "latin-1", "us-ascii": "latin-1", "ascii": "latin-1"}
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = np.zeros(256, dtype=np.int32)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


@dataclass(frozen=True)
class JsonLimits:
    """How much JSON one body may hold: ``max_depth`` levels of nesting (32), ``max_keys`` object keys (10,000)."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_keys: int = DEFAULT_MAX_KEYS


def fold(name: str) -> str:
    """A field name as :class:`Fields` matches it: trimmed, case folded."""
    return name.strip().casefold()


class Fields(dict):  # type: ignore[type-arg]
    """A JSON object whose keys are matched trimmed and case-insensitively.

    Keys are stored folded (:func:`fold`); ``spelling`` keeps each key as the client sent it (trimmed). A key
    that appears twice raises ``RequestError`` naming ``where`` + the key, or with ``strict`` False is kept in
    ``duplicate`` (the JSON parser's way: the field's path is known only once the whole body is parsed).
    """

    __slots__ = ("_pairs", "_spelling", "duplicate")

    def __init__(self, pairs: Iterable[tuple[str, Any]] = (), where: str = "", strict: bool = True) -> None:
        pairs = pairs if isinstance(pairs, list) else list(pairs)
        super().__init__([(key.strip().casefold(), value) for key, value in pairs])
        self._pairs = pairs  # the keys as sent: ``spelling`` is made from them only when asked for
        self._spelling: dict[str, str] | None = None
        self.duplicate: str | None = None
        if len(self) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                name = key.strip()
                if name.casefold() in seen:
                    if strict:
                        raise duplicate_error(f"{where}{name}")
                    self.duplicate = name
                    break
                seen.add(name.casefold())

    @property
    def spelling(self) -> dict[str, str]:
        """Each folded key → the key as the client sent it (trimmed)."""
        if self._spelling is None:
            self._spelling = {key.strip().casefold(): key.strip() for key, _ in reversed(self._pairs)}
        return self._spelling

    def __getitem__(self, key: str) -> Any:
        return dict.__getitem__(self, fold(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, fold(key))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (matched trimmed, case-insensitively), else ``default``."""
        return dict.get(self, fold(key), default)

    def __setitem__(self, key: str, value: Any) -> None:
        folded = fold(key)
        dict.__setitem__(self, folded, value)
        self.spelling.setdefault(folded, key.strip())

    def copy(self) -> Fields:
        """A shallow copy that keeps the keys as sent."""
        return Fields(list(self._pairs)) if len(self._pairs) == len(self) else Fields(self.items())

    def pop(self, key: str, *default: Any) -> Any:
        """Remove ``key`` (matched trimmed, case-insensitively) and return its value."""
        return dict.pop(self, fold(key), *default)

    def unknown(self, known: Iterable[str]) -> list[str]:
        """The keys (as sent) that are none of ``known``."""
        names = {fold(name) for name in known}
        return [self.spelling.get(key, key) for key in self if key not in names]


def duplicate_error(field: str) -> RequestError:
    """The refusal of a key sent twice."""
    return RequestError(field, "appears twice (keys are matched trimmed and case-insensitively)")


def fields_of(obj: Mapping[str, Any], where: str = "") -> Fields:
    """``obj`` as :class:`Fields` (itself when it already is); raises on a duplicate key."""
    return obj if isinstance(obj, Fields) else Fields(obj.items(), where)


def charset_of(content_type: str | None) -> str | None:
    """The codec a ``Content-Type``'s charset names (None without one); ``108100`` for one not accepted."""
    if not content_type:
        return None
    match = _CHARSET.search(content_type)
    if match is None:
        return None
    codec = _CHARSETS.get(match.group(1).lower())
    if codec is None:
        raise RequestError("Content-Type", f"charset {match.group(1)[:40]!r} is not accepted "
                                           "(UTF-8, GBK, GB18030 or ISO-8859-1)")
    return codec


def decode_text(raw: bytes, content_type: str | None = None) -> str:
    """The body's text, decoded by the ``Content-Type``'s charset (module docstring)."""
    codec = charset_of(content_type)
    if codec is None or codec == "utf-8":
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if codec == "utf-8":
                raise RequestError("body", f"is not UTF-8 as its charset says (byte {exc.start})") from None
            return raw.decode("latin-1")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise RequestError("body", f"is not {codec} as its charset says (byte {exc.start})") from None


def _bracket_depth(text: str) -> int:
    brackets = text.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)  # C speed: only []{} stay
    codes = np.frombuffer(brackets, dtype=np.uint8)
    return int(max(0, np.cumsum(_OPEN[codes]).max())) if len(codes) else 0


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text`` outside strings (linear, no recursion)."""
    return _bracket_depth(_STRING.sub("", text))


def within_depth(text: str, max_depth: int) -> int | None:
    """None when ``text`` nests at most ``max_depth`` deep, else its depth; cheap bounds first.

    The count of opening brackets bounds the depth (a few microseconds); then the depth counting brackets
    inside strings too; only when both are over the limit are strings stripped for the exact figure.
    """
    if text.count("[") + text.count("{") <= max_depth or _bracket_depth(text) <= max_depth:
        return None
    depth = nesting_depth(text)
    return depth if depth > max_depth else None


def _no_constant(name: str) -> Any:
    raise RequestError("body", f"not valid JSON ({name} is not a JSON value)")


def parse_json(text: str, limits: JsonLimits = JsonLimits()) -> Any:
    """``text`` as JSON within ``limits``, objects as :class:`Fields`; ``108100`` naming what is wrong."""
    depth = within_depth(text, limits.max_depth)
    if depth is not None:
        raise RequestError("body", f"nests {depth} levels deep; at most {limits.max_depth}")
    keys = 0
    duplicates = False

    def make(pairs: list[tuple[str, Any]]) -> Fields:
        nonlocal keys, duplicates
        keys += len(pairs)
        if keys > limits.max_keys:
            raise RequestError("body", f"has more than {limits.max_keys} keys")
        fields = Fields(pairs, strict=False)
        duplicates = duplicates or fields.duplicate is not None
        return fields

    try:
        value = json.loads(text, object_pairs_hook=make, parse_constant=_no_constant)
    except RecursionError:
        raise RequestError("body", f"nests too deep; at most {limits.max_depth}") from None
    except ValueError as exc:
        if isinstance(exc, RequestError):
            raise
        if "integer string conversion" in str(exc):  # Python's own bound on int() (4300 digits)
            raise RequestError("body", "holds an integer of more than 4300 digits") from None
        raise RequestError("body", f"not valid JSON ({exc})") from None
    if duplicates or "\\u" in text or (not text.isascii() and not is_text(text)):
        _check_text(value, "")  # only then: a walk over every value costs more than the parse
    return value


def _check_text(value: Any, where: str) -> None:
    """Refuse a duplicate key or a lone surrogate in any string or key, naming the field (iterative)."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                raise RequestError(path or "body", "holds a lone surrogate (not a Unicode character)")
        elif isinstance(item, Fields):
            if item.duplicate is not None:
                raise duplicate_error(f"{path}{'.' if path else ''}{item.duplicate}")
            for key, child in item.items():
                name = item.spelling.get(key, key)
                if not is_text(name):
                    raise RequestError(f"{path}{'.' if path else ''}key", "holds a lone surrogate")
                stack.append((child, f"{path}{'.' if path else ''}{name}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))


def is_text(text: str) -> bool:
    """True when ``text`` is Unicode text (no lone surrogate): encodable as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


"""What an answer's ``msg`` may show: never an absolute path of this machine.

Refusals name the field and quote what the client sent; a message that would show a path the client did not send
(a folder of the engine, a library's file name in an exception's text) shows only its last component instead.
"""

from __future__ import annotations

import re

#: An absolute POSIX path of two components or more (``/srv/ipcc/voices/x.wav``), as exceptions print them.
_ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"(),:;]+/)+[^\s/'\"(),:;]*")


def without_paths(message: str, sent: str = "") -> str:
    """``message`` with every absolute path that ``sent`` (the request's text) does not hold cut to ``…/NAME``."""

    def cut(match: re.Match[str]) -> str:
        path = match.group(0)
        if path in sent:
            return path
        return "…/" + path.rstrip("/").rsplit("/", 1)[-1]

    return _ABSOLUTE.sub(cut, message)

"""The browser side of the engine: the softphone and calls pages, their WebSocket, and the ``browser`` endpoint.

* :mod:`engine.web.caller`: the caller's audio of a page (keypad presses as DTMF tones, microphone audio).
* :mod:`engine.web.phone`: a ``browser`` call's sink: frames, status and events to the page, the call's trace.
* :mod:`engine.web.socket`: the page's WebSocket protocol, with its limits.
* :mod:`engine.web.picture`: a call drawn on one time axis (matplotlib, the ``plot`` extra).
* :mod:`engine.web.routes`: the pages, the WebSocket and the calls API mounted on the server's app.
"""

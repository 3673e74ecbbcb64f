"""In-band DTMF: tones, a streaming detector (single-channel and batched across calls), whole buffers many at once.

Modules: ``tones`` (generation), ``thresholds`` (every acceptance threshold), ``analysis`` (windows and features),
``floats`` (the same features with Python floats, for a few windows), ``decision`` (runs, acceptance, hold),
``event`` (:class:`~engine.dtmf.event.KeyEvent`), ``detector`` (the streaming detectors), ``batch`` (many whole
buffers at once).
"""

"""The espeak-ng library and the one thread that drives it through pyttsx3.

Why that library: pyttsx3 2.99 drives espeak-ng through ctypes and loads ``libespeak-ng.so.1`` by name. We
load the wheel's copy (``espeakng_loader``) first, by absolute path and ``RTLD_GLOBAL`` (its soname is
``libespeak-ng.so.1``, so pyttsx3's load finds it), and point ``ESPEAK_DATA_PATH`` at the wheel's data before
espeak is initialised. A library older than 1.52 is refused with :class:`EspeakVersionError` (1.51 reads
Mandarin as pinyin with spoken tone numbers).

Threads: the process has one pyttsx3 engine, owned by one worker thread (``ipcc-tts``) that makes every call
to it (:data:`WORKER`). Do not ``fork`` after espeak is initialised: the child's engine refuses to work
(:class:`SpeechError`) rather than deadlock.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import io
import logging
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from engine.errors import EspeakVersionError, SpeechError, SpeechInputError

log = logging.getLogger(__name__)

MIN_ESPEAK_VERSION = (1, 52)
IDLE_TIMEOUT_S = 10.0  # espeak's own thread busy longer than this (between requests) is a SpeechError
SYNTH_TIMEOUT_S = 60.0  # waiting for the worker (queue + synthesis) longer than this is a SpeechError


def check_espeak_version(version: str) -> None:
    """Raise :class:`EspeakVersionError` unless ``version`` (as ``espeak_Info`` gives it) is 1.52 or newer."""
    if tuple(int(part) for part in re.findall(r"\d+", version)[:3]) < MIN_ESPEAK_VERSION:
        raise EspeakVersionError(f"espeak-ng {version} is too old: 1.52 or newer is required "
                                 "(1.51 reads Mandarin as pinyin with spoken tone numbers)")


@functools.lru_cache(maxsize=1)
def espeak_library() -> tuple[ctypes.CDLL, str]:
    """Load the wheel's espeak-ng (``RTLD_GLOBAL``, without initialising it) and return it with its version.

    Raises :class:`EspeakVersionError` when the library cannot be loaded or is older than 1.52.
    """
    try:
        import espeakng_loader

        library = ctypes.CDLL(espeakng_loader.get_library_path(), mode=ctypes.RTLD_GLOBAL)
        info = library.espeak_Info
        info.restype = ctypes.c_char_p
        info.argtypes = [ctypes.c_void_p]
        version = info(None).decode("ascii", "replace")
    except (ImportError, OSError, AttributeError) as exc:
        raise EspeakVersionError(f"cannot load espeak-ng from espeakng_loader: {exc}") from exc
    check_espeak_version(version)
    return library, version


@functools.lru_cache(maxsize=1)
def pyttsx3_version() -> str:
    """The installed pyttsx3's version, without importing it.

    From the name of its ``.dist-info`` folder (importing ``importlib.metadata`` alone slows a warm start), else from
    its metadata.
    """
    spec = importlib.util.find_spec("pyttsx3")
    if spec is not None and spec.origin is not None:
        for info in Path(spec.origin).parent.parent.glob("pyttsx3-*.dist-info"):
            return info.name.removeprefix("pyttsx3-").removesuffix(".dist-info")
    from importlib import metadata

    return metadata.version("pyttsx3")


def _quiet_print(*_args: object, **_kwargs: object) -> None:
    """Stands in for ``print`` inside pyttsx3's espeak driver ("Audio saved to ..." on every save)."""


class _Worker:
    """Owns the process's only pyttsx3 engine; every call to it runs on the one thread of ``_executor``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Any = None  # worker thread only, like everything below
        self._driver: Any = None
        self._espeak: Any = None
        self._errors: list[BaseException] = []
        self._broken = ""
        self.init_count = 0  # times espeak was initialised in this process (0 or 1)

    def call(self, fn: Any, *args: object) -> Any:
        """Run ``fn(*args)`` on the worker thread and return its result (waits up to SYNTH_TIMEOUT_S)."""
        with self._lock:
            if self._broken:
                raise SpeechError(self._broken)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipcc-tts")
            future: Future = self._executor.submit(fn, *args)
        try:
            return future.result(timeout=SYNTH_TIMEOUT_S)
        except FutureTimeout as exc:
            raise SpeechError(f"speech worker gave no result within {SYNTH_TIMEOUT_S:g} s") from exc

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._executor = None
        if self._engine is not None:
            self._broken = "espeak-ng was initialised before this process forked; speech is unavailable here"

    def _on_error(self, name: object = None, exception: BaseException | None = None, **_: object) -> None:
        self._errors.append(exception or SpeechError(f"pyttsx3 reported an error ({name})"))

    def _ensure_engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        import espeakng_loader

        _, version = espeak_library()  # preloads the wheel's library before pyttsx3 looks for one
        import pyttsx3
        import pyttsx3.drivers.espeak as espeak_driver
        from pyttsx3.drivers import _espeak

        linked = _espeak.Info(None).decode("ascii", "replace")
        if linked != version:  # pyttsx3 was imported first and found the system's library
            raise EspeakVersionError(f"pyttsx3 is using espeak-ng {linked}, loaded before engine.tts.synthesizer "
                                     f"could preload espeakng_loader's {version} (1.52 or newer is required)")
        espeak_driver.print = _quiet_print  # module global shadows the builtin; sys.stdout stays untouched
        # espeak reads its data path once, at initialisation; without it, it calls exit(1). The variable is
        # restored afterwards, so child processes (an espeak-ng command of another version) are unaffected.
        previous = os.environ.get("ESPEAK_DATA_PATH")
        os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
        try:
            engine = pyttsx3.init()
        finally:
            if previous is None:
                os.environ.pop("ESPEAK_DATA_PATH", None)
            else:
                os.environ["ESPEAK_DATA_PATH"] = previous
        engine.connect("error", self._on_error)
        engine.runAndWait()  # an empty loop leaves the driver idle, so properties apply when set
        self._driver, self._espeak, self._engine = engine.proxy._driver, _espeak, engine
        self.init_count += 1
        log.info("espeak-ng %s initialised through pyttsx3 %s", version, pyttsx3_version())
        return engine

    def _wait_idle(self) -> None:
        """Wait until espeak's own thread has nothing queued.

        pyttsx3 runs espeak asynchronously (AUDIO_OUTPUT_RETRIEVAL): rate and volume are queued commands, the voice is
        set at once, and ``runAndWait`` cancels whatever is queued when it starts; so settings go in only when espeak is
        idle, and synthesis starts only after they have been applied.
        """
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while self._espeak.IsPlaying():
            if time.monotonic() > deadline:
                raise SpeechError(f"espeak-ng stayed busy for {IDLE_TIMEOUT_S:g} s")
            time.sleep(0.0002)

    def _set_voice(self, voice: str) -> None:
        self._wait_idle()
        self._errors.clear()
        self._engine.setProperty("voice", voice)
        if self._errors:
            raise SpeechInputError("voice", f"espeak-ng has no voice {voice!r} ({self._errors[0]})")

    def synthesize_wav(self, text: str, voice: str, rate_wpm: int, volume_percent: int) -> bytes:
        """(Worker thread.) The WAV (22050 Hz mono int16) espeak makes of ``text``."""
        engine = self._ensure_engine()
        self._set_voice(voice)
        engine.setProperty("rate", rate_wpm)
        engine.setProperty("volume", volume_percent / 100)
        self._wait_idle()
        self._espeak.SetSynthCallback(self._driver._onSynth)  # in case another pyttsx3 engine took it
        buffer = io.BytesIO()
        engine.save_to_file(text, buffer)
        try:
            engine.runAndWait()
        except Exception as exc:
            engine._inLoop = False  # pyttsx3 leaves its loop flag set when synthesis raises
            raise SpeechError(f"espeak-ng failed on {text[:40]!r}: {exc}") from exc
        if self._errors:
            raise SpeechError(f"pyttsx3 reported: {self._errors[0]}")
        if not buffer.getvalue():
            raise SpeechError(f"espeak-ng produced no audio for {text[:40]!r}")
        return buffer.getvalue()

    def phonemes(self, text: str, voice: str, ipa: bool) -> str:
        """(Worker thread.) espeak's phonemes for ``text`` (``espeak_TextToPhonemes``), clauses joined by newlines.

        ASCII names with tone numbers, or IPA.
        """
        self._ensure_engine()
        self._set_voice(voice)
        c_int = ctypes.c_int
        prototype = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), c_int, c_int)
        to_phonemes = prototype(("espeak_TextToPhonemes", self._espeak.dll))
        source = ctypes.create_string_buffer(text.encode("utf-8"))
        cursor = ctypes.c_void_p(ctypes.addressof(source))
        clauses = []
        while cursor.value:
            clauses.append((to_phonemes(ctypes.byref(cursor), 1, 2 if ipa else 0) or b"").decode("utf-8"))
        return "\n".join(clauses)


WORKER = _Worker()
os.register_at_fork(after_in_child=WORKER.after_fork_in_child)


def espeak_init_count() -> int:
    """How many times this process initialised espeak (0 while every synthesis was a cache hit, else 1)."""
    return WORKER.init_count

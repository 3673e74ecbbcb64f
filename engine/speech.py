"""Text to speech: the engine's one wrapper around pyttsx3, on espeak-ng 1.52 from ``espeakng_loader``.

Why that library: pyttsx3 2.99 drives espeak-ng through ctypes and loads ``libespeak-ng.so.1`` by name. We
load the wheel's copy first, by absolute path and ``RTLD_GLOBAL`` (its soname is ``libespeak-ng.so.1``, so
pyttsx3's load finds it), and point ``ESPEAK_DATA_PATH`` at the wheel's data before espeak is initialised. A
library older than 1.52 is refused with :class:`EspeakVersionError` (1.51 reads Mandarin as pinyin with
spoken tone numbers).

Threads: the process has one pyttsx3 engine, owned by one worker thread (``ipcc-tts``) that makes every call
to it; :class:`Synthesizer` objects are cache front-ends that submit work to it and wait on a future, so any
number of them, in any threads, share it. espeak is initialised lazily on the first cache miss: a process
whose prompts are all cached never loads pyttsx3. Do not ``fork`` after espeak is initialised: the child's
engine refuses to work (:class:`SpeechError`) rather than deadlock.

Text is plain text, never SSML: pyttsx3 passes ``espeakCHARS_UTF8 | espeakENDPAUSE`` without ``espeakSSML``,
so ``<speak>`` is read as the word "speak", ``&amp;`` as "and amp", and a lone ``<`` is a silent punctuation
mark.

Durations: espeak starts with up to ~50 ms and ends with a sentence pause of 0.3–0.9 s of digital
near-silence. Both ends are trimmed to :data:`EDGE_MARGIN_MS` (50 ms) beyond the first and last sample
louder than :data:`SILENCE_THRESHOLD` (33 ≈ −60 dBFS), so a prompt lasts its speech plus 0.1 s; pauses
inside the text are kept. Put explicit silence between prompts that are played back to back. Audio that
never crosses the threshold (volume 0) is returned untrimmed.

Reproducibility: espeak carries some state (pitch flutter) from one utterance to the next, so the same text
made again after different utterances differs by a few samples (envelopes correlate > 0.97). A cache entry
fixes a key's audio once made; the same sequence of requests in a fresh process gives the same samples.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import io
import logging
import math
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EngineError, RequestError
from .format import SAMPLE_RATE_HZ
from .speech_cache import (
    CACHE_FORMAT_VERSION,
    EDGE_MARGIN_MS,
    SILENCE_THRESHOLD,
    PromptCache,
    cache_key,
    default_cache_dir,
    wav_to_native,
    wav_to_prompt,
)

log = logging.getLogger(__name__)

MIN_ESPEAK_VERSION = (1, 52)
MANDARIN_VOICE = "sit/cmn"
ENGLISH_VOICE = "gmw/en-us"
RATE_WPM_MIN, RATE_WPM_MAX = 80, 450  # espeak-ng's own limits
MAX_TEXT_CHARS = 10_000
IDLE_TIMEOUT_S = 10.0  # espeak's own thread busy longer than this (between requests) is a SpeechError
SYNTH_TIMEOUT_S = 60.0  # waiting for the worker (queue + synthesis) longer than this is a SpeechError
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


class SpeechError(EngineError):
    """Speech synthesis failed inside the engine (``108104``)."""


class SpeechInputError(SpeechError, RequestError):
    """The caller's text or voice settings are unusable (``108100``); a ``ValueError`` naming ``field``."""


class EspeakVersionError(SpeechError):
    """The espeak-ng library is missing, older than 1.52 or not the one pyttsx3 uses (``108104``)."""


@dataclass(frozen=True)
class VoiceSettings:
    """How to speak. ``voice``: espeak voice id such as ``"sit/cmn"`` or ``"gmw/en-us+f3"`` (``None``: chosen
    from the text by :func:`voice_for_text`); ``rate_wpm``: words per minute, 80–450 (default 175);
    ``volume``: 0–1 (default 1.0; espeak's 100 %, sent to it in whole percent)."""

    voice: str | None = None
    rate_wpm: int = 175
    volume: float = 1.0

    def __post_init__(self) -> None:
        if self.voice is not None and (not isinstance(self.voice, str) or not self.voice.strip()
                                       or "\x00" in self.voice):
            raise SpeechInputError("voice", f"must be None or an espeak voice id, got {self.voice!r}")
        if isinstance(self.rate_wpm, bool) or not isinstance(self.rate_wpm, int) or not (
                RATE_WPM_MIN <= self.rate_wpm <= RATE_WPM_MAX):
            raise SpeechInputError("rate_wpm", f"must be an int in {RATE_WPM_MIN}..{RATE_WPM_MAX}, "
                                               f"got {self.rate_wpm!r}")
        if isinstance(self.volume, bool) or not isinstance(self.volume, (int, float)) or not (
                math.isfinite(self.volume) and 0.0 <= self.volume <= 1.0):
            raise SpeechInputError("volume", f"must be a number in 0..1, got {self.volume!r}")

    @property
    def volume_percent(self) -> int:
        """The volume as espeak gets it: whole percent, 0–100."""
        return round(self.volume * 100)


def voice_for_text(text: str, settings: VoiceSettings) -> str:
    """``settings.voice`` if set, else Mandarin (``sit/cmn``) when ``text`` holds a Han ideograph, else
    English (``gmw/en-us``). Kana, Hangul and CJK punctuation alone do not select Mandarin."""
    if settings.voice is not None:
        return settings.voice
    return MANDARIN_VOICE if _HAN.search(text) else ENGLISH_VOICE


def check_text(text: str) -> None:
    """Raise :class:`SpeechInputError` (field ``text``) unless ``text`` is speakable: a non-blank str of at
    most :data:`MAX_TEXT_CHARS` characters without NUL."""
    if not isinstance(text, str) or not text.strip():
        raise SpeechInputError("text", f"must be non-empty text, got {text!r}")
    if len(text) > MAX_TEXT_CHARS:
        raise SpeechInputError("text", f"{len(text)} characters; at most {MAX_TEXT_CHARS}")
    if "\x00" in text:
        raise SpeechInputError("text", "contains a NUL character")


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
    """The installed pyttsx3's version (read from its metadata, without importing it)."""
    return importlib.metadata.version("pyttsx3")


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
            raise EspeakVersionError(f"pyttsx3 is using espeak-ng {linked}, loaded before engine.speech "
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
        """Wait until espeak's own thread has nothing queued. pyttsx3 runs espeak asynchronously
        (AUDIO_OUTPUT_RETRIEVAL): rate and volume are queued commands, the voice is set at once, and
        ``runAndWait`` cancels whatever is queued when it starts; so settings go in only when espeak is idle,
        and synthesis starts only after they have been applied."""
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
        """(Worker thread.) espeak's phonemes for ``text`` (``espeak_TextToPhonemes``), clauses joined by
        newlines; ASCII names with tone numbers, or IPA."""
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


_WORKER = _Worker()
os.register_at_fork(after_in_child=_WORKER.after_fork_in_child)


def espeak_init_count() -> int:
    """How many times this process initialised espeak (0 while every synthesis was a cache hit, else 1)."""
    return _WORKER.init_count


def phonemes(text: str, voice: str, ipa: bool = False) -> str:
    """espeak-ng's phonemes for ``text`` in ``voice`` (diagnostics and tests; runs on the speech worker)."""
    check_text(text)
    return _WORKER.call(_WORKER.phonemes, text, voice, ipa)


def synthesize_native(text: str, settings: VoiceSettings = VoiceSettings()) -> tuple[np.ndarray, int]:
    """``text`` as espeak makes it, uncached: (mono int16 samples, rate in Hz: 22050), trimmed like
    :meth:`Synthesizer.synthesize`. For making prompt files at rates other than the call's."""
    check_text(text)
    return wav_to_native(_WORKER.call(_WORKER.synthesize_wav, text, voice_for_text(text, settings),
                                      settings.rate_wpm, settings.volume_percent))


class Synthesizer:
    """A cache front-end over the process's only pyttsx3 engine; thread-safe; results cached by
    :meth:`cache_key` in memory (LRU of ``memory_items`` arrays) and on disk (``<cache_dir>/tts/<key>.wav``).

    ``cache_dir``: default :func:`default_cache_dir`; ``disk_cache=False`` keeps results in memory only.
    Counters: ``misses`` (syntheses by espeak), ``memory_hits``, ``disk_hits``. Raises
    :class:`EspeakVersionError` at construction when espeak-ng is missing or older than 1.52.
    """

    def __init__(self, cache_dir: Path | None = None, memory_items: int = 256, *,
                 disk_cache: bool = True) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.espeak_version: str = espeak_library()[1]
        self._cache = PromptCache(self.cache_dir if disk_cache else None, memory_items)

    misses = property(lambda self: self._cache.misses, doc="Syntheses made by espeak for this front-end.")
    memory_hits = property(lambda self: self._cache.memory_hits, doc="Requests served from memory.")
    disk_hits = property(lambda self: self._cache.disk_hits, doc="Requests served from the disk cache.")

    def cache_key(self, text: str, settings: VoiceSettings = VoiceSettings()) -> str:
        """sha256 over everything that changes the audio: text, resolved voice, rate, volume, espeak and
        pyttsx3 versions, output rate, trimming and the cache format version."""
        return cache_key({
            "format": CACHE_FORMAT_VERSION, "text": text, "voice": voice_for_text(text, settings),
            "rate_wpm": settings.rate_wpm, "volume_percent": settings.volume_percent,
            "espeak": self.espeak_version, "pyttsx3": pyttsx3_version(), "output_rate_hz": SAMPLE_RATE_HZ,
            "edge_margin_ms": EDGE_MARGIN_MS, "silence_threshold": SILENCE_THRESHOLD,
        })

    def synthesize(self, text: str, settings: VoiceSettings = VoiceSettings()) -> np.ndarray:
        """``text`` spoken with ``settings``: 8 kHz mono int16, read-only, trimmed as the module says.

        Concurrent requests for the same key wait for one synthesis. Raises :class:`SpeechInputError` for
        blank text or an unknown voice, :class:`SpeechError` when espeak fails or this front-end is closed.
        """
        check_text(text)
        if self._cache.closed:
            raise SpeechError("this Synthesizer is closed")

        def make() -> np.ndarray:
            wav = _WORKER.call(_WORKER.synthesize_wav, text, voice_for_text(text, settings),
                               settings.rate_wpm, settings.volume_percent)
            return wav_to_prompt(wav)

        return self._cache.get_or_make(self.cache_key(text, settings), make)

    def close(self) -> None:
        """Drop the memory cache and refuse further calls; the shared engine and disk files stay."""
        self._cache.close()
        with _REGISTRY_LOCK:
            for path, front_end in list(_REGISTRY.items()):
                if front_end is self:
                    del _REGISTRY[path]


_REGISTRY: dict[Path, Synthesizer] = {}
_REGISTRY_LOCK = threading.Lock()


def synthesizer(cache_dir: Path | None = None) -> Synthesizer:
    """The process-wide :class:`Synthesizer` for ``cache_dir`` (default :func:`default_cache_dir`), created
    on first use. Every Synthesizer shares the one engine, so this only spares duplicate memory caches."""
    path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).absolute()
    with _REGISTRY_LOCK:
        front_end = _REGISTRY.get(path)
        if front_end is None:
            front_end = _REGISTRY[path] = Synthesizer(path)
        return front_end

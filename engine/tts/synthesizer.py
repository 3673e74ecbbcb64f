"""Text to speech: the engine's one wrapper around pyttsx3, on espeak-ng 1.52 from ``espeakng_loader``.

The espeak-ng library, its version check and the one worker thread that owns pyttsx3 live in
:mod:`engine.tts.espeak`. :class:`Synthesizer` objects are cache front-ends that submit work to that worker and
wait on a future, so any number of them, in any threads, share it. espeak is initialised lazily on the first
cache miss: a process whose prompts are all cached never loads pyttsx3.

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

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.format import SAMPLE_RATE_HZ
from engine.tts.cache import (
    CACHE_FORMAT_VERSION,
    DEFAULT_DISK_BYTES,
    DEFAULT_MEMORY_BYTES,
    EDGE_MARGIN_MS,
    SILENCE_THRESHOLD,
    PromptCache,
    cache_key,
    default_cache_dir,
    wav_to_native,
    wav_to_prompt,
)
from engine.tts.espeak import (
    WORKER,
    EspeakVersionError,
    SpeechError,
    SpeechInputError,
    espeak_init_count,
    espeak_library,
    pyttsx3_version,
)

__all__ = ["EspeakVersionError", "SpeechError", "SpeechInputError", "espeak_init_count"]

MANDARIN_VOICE = "sit/cmn"
ENGLISH_VOICE = "gmw/en-us"
RATE_WPM_MIN, RATE_WPM_MAX = 80, 450  # espeak-ng's own limits
MAX_TEXT_CHARS = 10_000
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


@dataclass(frozen=True)
class VoiceSettings:
    """How to speak.

    ``voice``: espeak voice id such as ``"sit/cmn"`` or ``"gmw/en-us+f3"`` (``None``: chosen from the text by
    :func:`voice_for_text`); ``rate_wpm``: words per minute, 80–450 (default 175); ``volume``: 0–1 (default 1.0;
    espeak's 100 %, sent to it in whole percent).
    """

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
    """``settings.voice`` if set, else Mandarin (``sit/cmn``) for Han text, else English (``gmw/en-us``).

    Mandarin is chosen when ``text`` holds a Han ideograph; Kana, Hangul and CJK punctuation alone do not select it.
    """
    if settings.voice is not None:
        return settings.voice
    return MANDARIN_VOICE if _HAN.search(text) else ENGLISH_VOICE


def check_text(text: str) -> None:
    """Raise :class:`SpeechInputError` (field ``text``) unless ``text`` is speakable.

    Speakable: a non-blank str of at most :data:`MAX_TEXT_CHARS` characters without NUL.
    """
    if not isinstance(text, str) or not text.strip():
        raise SpeechInputError("text", f"must be non-empty text, got {text!r}")
    if len(text) > MAX_TEXT_CHARS:
        raise SpeechInputError("text", f"{len(text)} characters; at most {MAX_TEXT_CHARS}")
    if "\x00" in text:
        raise SpeechInputError("text", "contains a NUL character")




def phonemes(text: str, voice: str, ipa: bool = False) -> str:
    """espeak-ng's phonemes for ``text`` in ``voice`` (diagnostics and tests; runs on the speech worker)."""
    check_text(text)
    return WORKER.call(WORKER.phonemes, text, voice, ipa)


def synthesize_native(text: str, settings: VoiceSettings = VoiceSettings()) -> tuple[np.ndarray, int]:
    """``text`` as espeak makes it, uncached: (mono int16 samples, rate in Hz: 22050).

    Trimmed like :meth:`Synthesizer.synthesize`. For making prompt files at rates other than the call's.
    """
    check_text(text)
    return wav_to_native(WORKER.call(WORKER.synthesize_wav, text, voice_for_text(text, settings),
                                      settings.rate_wpm, settings.volume_percent))


#: :meth:`Synthesizer.cache_key` remembers the keys of texts up to this many characters...
KEY_MEMO_CHARS = 512
#: ...and at most this many of them (the memo holds at most 2 MiB of text).
KEY_MEMO_ENTRIES = 4096


class SpeechSource(Protocol):
    """Anything that turns text into 8 kHz mono int16 speech (the engine's :class:`Synthesizer`)."""

    def synthesize(self, text: str, settings: VoiceSettings = ...) -> np.ndarray: ...


class Synthesizer:
    """A cache front-end over the process's only pyttsx3 engine; thread-safe.

    Results are cached by :meth:`cache_key` in memory (LRU of ``memory_items`` arrays) and on disk
    (``<cache_dir>/tts/<key>.wav``).

    ``cache_dir``: default :func:`default_cache_dir`; ``disk_cache=False`` keeps results in memory only;
    ``disk_bytes``: the most the disk cache keeps (default :data:`~engine.tts.cache.DEFAULT_DISK_BYTES`, 512 MiB;
    least recently used entries go first); ``memory_bytes``: the most the memory LRU keeps (default
    :data:`~engine.tts.cache.DEFAULT_MEMORY_BYTES`, 128 MiB, besides its ``memory_items``).
    Counters: ``misses`` (syntheses by espeak), ``memory_hits``, ``disk_hits``. Raises
    :class:`EspeakVersionError` at construction when espeak-ng is missing or older than 1.52.
    """

    def __init__(self, cache_dir: Path | None = None, memory_items: int = 256, *,
                 disk_cache: bool = True, disk_bytes: int = DEFAULT_DISK_BYTES,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.espeak_version: str = espeak_library()[1]
        self.pyttsx3_version: str = pyttsx3_version()  # constant for the process: read once, not per key
        self._cache = PromptCache(self.cache_dir if disk_cache else None, memory_items, disk_bytes, memory_bytes)
        self._keys: dict[tuple[str, VoiceSettings], str] = {}  # cache_key's answers (bounded: see cache_key)

    misses = property(lambda self: self._cache.misses, doc="Syntheses made by espeak for this front-end.")
    memory_hits = property(lambda self: self._cache.memory_hits, doc="Requests served from memory.")
    disk_hits = property(lambda self: self._cache.disk_hits, doc="Requests served from the disk cache.")

    def cache_key(self, text: str, settings: VoiceSettings = VoiceSettings()) -> str:
        """sha256 over everything that changes the audio.

        That is: text, resolved voice, rate, volume, espeak and pyttsx3 versions, output rate, trimming and the cache
        format version. Every request's speech asks for its keys: the answers for texts of up to
        :data:`KEY_MEMO_CHARS` characters are remembered (at most :data:`KEY_MEMO_ENTRIES`, then forgotten at once).
        """
        memo = self._keys
        key = memo.get((text, settings))
        if key is None:
            key = cache_key({
                "format": CACHE_FORMAT_VERSION, "text": text, "voice": voice_for_text(text, settings),
                "rate_wpm": settings.rate_wpm, "volume_percent": settings.volume_percent,
                "espeak": self.espeak_version, "pyttsx3": self.pyttsx3_version, "output_rate_hz": SAMPLE_RATE_HZ,
                "edge_margin_ms": EDGE_MARGIN_MS, "silence_threshold": SILENCE_THRESHOLD,
            })
            if len(text) <= KEY_MEMO_CHARS:
                if len(memo) >= KEY_MEMO_ENTRIES:
                    memo.clear()
                memo[(text, settings)] = key
        return key

    def synthesize(self, text: str, settings: VoiceSettings = VoiceSettings()) -> np.ndarray:
        """``text`` spoken with ``settings``: 8 kHz mono int16, read-only, trimmed as the module says.

        Concurrent requests for the same key wait for one synthesis. Raises :class:`SpeechInputError` for
        blank text or an unknown voice, :class:`SpeechError` when espeak fails or this front-end is closed.
        """
        check_text(text)
        if self._cache.closed:
            raise SpeechError("this Synthesizer is closed")

        def make() -> np.ndarray:
            wav = WORKER.call(WORKER.synthesize_wav, text, voice_for_text(text, settings),
                               settings.rate_wpm, settings.volume_percent)
            return wav_to_prompt(wav)

        return self._cache.get_or_make(self.cache_key(text, settings), make)

    def cached(self, text: str, settings: VoiceSettings = VoiceSettings()) -> np.ndarray | None:
        """``text`` as :meth:`synthesize` returns it if it is in the memory cache now, else None.

        Never synthesizes nor reads the disk, so it does not block (callers fall back to :meth:`synthesize`).
        """
        if self._cache.closed or not isinstance(text, str):
            return None
        return self._cache.peek(self.cache_key(text, settings))

    def close(self) -> None:
        """Drop the memory cache and refuse further calls; the shared engine and disk files stay."""
        self._cache.close()
        with _REGISTRY_LOCK:
            for key, front_end in list(_REGISTRY.items()):
                if front_end is self:
                    del _REGISTRY[key]


_REGISTRY: dict[tuple[Path, int, int], Synthesizer] = {}
_REGISTRY_LOCK = threading.Lock()


def synthesizer(cache_dir: Path | None = None, disk_bytes: int = DEFAULT_DISK_BYTES,
                memory_bytes: int = DEFAULT_MEMORY_BYTES) -> Synthesizer:
    """The process-wide :class:`Synthesizer` for ``cache_dir`` (default :func:`default_cache_dir`) and its bounds.

    ``disk_bytes`` / ``memory_bytes``: as :class:`Synthesizer`'s. Created on first use. Every Synthesizer shares
    the one engine, so this only spares duplicate memory caches.
    """
    path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).absolute()
    with _REGISTRY_LOCK:
        front_end = _REGISTRY.get((path, disk_bytes, memory_bytes))
        if front_end is None:
            front_end = _REGISTRY[path, disk_bytes, memory_bytes] = Synthesizer(
                path, disk_bytes=disk_bytes, memory_bytes=memory_bytes)
        return front_end

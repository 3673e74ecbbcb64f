"""DTMF detection as a stream: latency, any split of the audio, batching, the two implementations, talk-off."""

from __future__ import annotations

import numpy as np
import pytest

import engine.dtmf.detector
from engine.dtmf import analysis as dtmf_analysis
from engine.dtmf import floats as dtmf_floats
from engine.dtmf.channel import DtmfDetector, detect_keys
from engine.dtmf.detector import BatchDtmfDetector, KeyEvent
from engine.dtmf.tones import KEYS, dtmf_sequence, dtmf_tone
from engine.format import SAMPLE_RATE_HZ, dbm0_to_peak, to_int16
from engine.testing.dtmf_cases import BEYOND, VOICES, make_case, note, random_tone


def test_latency_median_within_40_ms() -> None:
    rng = np.random.default_rng(15)
    latencies_ms = []
    for i in range(96):
        key = KEYS[i % 16]
        level = float(rng.uniform(-26, -3))
        x, onset = make_case(rng, random_tone(rng, key, 80, level_dbm0=level), 20.0 if i % 3 == 0 else None)
        (event,) = detect_keys(x)
        assert event.key == key
        latencies_ms.append((event.detected_sample - onset) / SAMPLE_RATE_HZ * 1000)
        assert abs(event.start_sample - onset) <= 80  # onset estimated within 10 ms
    median = float(np.median(latencies_ms))
    print(f"median latency {median:.1f} ms, max {max(latencies_ms):.1f} ms")
    assert 20 <= median <= 40


def test_any_split_of_the_stream_gives_the_same_events() -> None:
    rng = np.random.default_rng(16)
    x = to_int16(dtmf_sequence("147*2580369#ABCD", tone_ms=45, gap_ms=45) + rng.normal(0, 300, 16 * 720))
    whole = detect_keys(x)
    assert "".join(e.key for e in whole) == "147*2580369#ABCD"
    for sizes in ([1], [160], [1000], [7, 13, 161, 39], [40, 80, 0, 3]):
        det, events, pos, i = DtmfDetector(), [], 0, 0
        while pos < len(x):
            n = sizes[i % len(sizes)]
            events += det.process(x[pos:pos + n])
            pos, i = pos + n, i + 1
        events += det.process(np.zeros(120, dtype=np.int16))
        assert [(e.key, e.start_sample) for e in events] == [(e.key, e.start_sample) for e in whole], sizes


def test_batched_equals_single_and_channels_come_and_go() -> None:
    rng = np.random.default_rng(17)
    signals = [to_int16(dtmf_sequence("".join(rng.choice(list(KEYS), 5)), 50, 60, float(rng.uniform(-20, -5)))
                        + rng.normal(0, 100, 5 * 880)) for _ in range(6)]
    singles = [detect_keys(s) for s in signals]
    batch = BatchDtmfDetector(6)
    got: list[list[KeyEvent]] = [[] for _ in range(6)]
    audio = np.stack(signals)
    for start in range(0, audio.shape[1], 160):
        for ch, ev in batch.process(audio[:, start:start + 160]):
            got[ch].append(ev)
    for ch, ev in batch.process(np.zeros((6, 200), dtype=np.int16)):
        got[ch].append(ev)
    assert [[(e.key, e.start_sample, e.detected_sample) for e in g] for g in got] == \
           [[(e.key, e.start_sample, e.detected_sample) for e in s] for s in singles]
    # remove shifts later channels down; add starts fresh, positions counted from its start
    det = BatchDtmfDetector(0)
    assert det.channels == 0 and det.process(np.zeros((0, 160), dtype=np.int16)) == []
    assert [det.add_channel() for _ in range(3)] == [0, 1, 2]
    tone = to_int16(np.concatenate([dtmf_tone("7", 60), np.zeros(600)]))
    det.process(np.zeros((3, 100), dtype=np.int16))
    det.remove_channel(0)
    assert det.channels == 2 and det.add_channel() == 2
    frames = np.zeros((3, len(tone)), dtype=np.int16)
    frames[1] = tone  # was channel 2
    frames[2] = tone  # the new channel
    events = det.process(frames)
    assert [(c, e.key) for c, e in events] == [(1, "7"), (2, "7")]
    assert events[0][1].detected_sample == events[1][1].detected_sample + 100
    det.reset_channel(1)
    assert [(c, e.key) for c, e in det.process(frames)] == [(1, "7"), (2, "7")]
    with pytest.raises(IndexError):
        det.remove_channel(3)
    with pytest.raises(ValueError):
        det.process(np.zeros((2, 160), dtype=np.int16))


def test_vectorised_decision_equals_per_channel_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many channels take the numpy decision path, few the per-channel one: both must agree exactly."""
    import engine.dtmf.detector

    rng = np.random.default_rng(19)
    rows = []
    for i in range(40):
        keys = "".join(rng.choice(list(KEYS), 4))
        tone_ms, gap_ms = (float(rng.choice([20, 23, 40, 60])), float(rng.choice([10, 40, 80])))
        x = dtmf_sequence(keys, tone_ms, gap_ms, float(rng.uniform(-30, 0)), float(rng.uniform(-9, 13)),
                          float(rng.uniform(-0.04, 0.04)))
        x = np.concatenate([np.zeros(int(rng.integers(0, 400))), x, np.zeros(4000)])[:4000]
        rows.append(to_int16(x + rng.normal(0, 30 if i % 2 else 1000, 4000)))
    audio = np.stack(rows)

    def events(min_channels: int) -> list[tuple[int, KeyEvent]]:
        monkeypatch.setattr(engine.dtmf.detector, "VECTOR_MIN_CHANNELS", min_channels)
        det = BatchDtmfDetector(len(rows))
        return [e for start in range(0, 4000, 160) for e in det.process(audio[:, start:start + 160])]

    vector, scalar = events(1), events(10**6)
    assert len(scalar) > 15
    assert vector == scalar


def test_a_held_key_is_reported_once() -> None:
    x = to_int16(np.concatenate([dtmf_tone("8", 3000), np.zeros(400)]))
    events = detect_keys(x)
    assert [e.key for e in events] == ["8"]
    assert events[0].detected_sample < 400


def test_tone_ending_the_buffer_is_flushed() -> None:
    events = detect_keys(to_int16(np.concatenate([np.zeros(400), dtmf_tone("#", 45)])))
    assert [e.key for e in events] == ["#"] and events[0].detected_sample <= 760



def test_the_two_feature_implementations_agree_to_the_bit() -> None:
    """Numpy (many channels) and Python floats (a few) give bit-identical features for every gated window."""
    rng = np.random.default_rng(20)
    rows = []
    for i in range(64):
        x = dtmf_sequence("".join(rng.choice(list(KEYS), 3)), float(rng.choice([20, 30, 45])),
                          float(rng.choice([5, 20])), float(rng.uniform(-40, 0)), float(rng.uniform(-12, 14)),
                          float(rng.uniform(-0.06, 0.06)))[:1200]
        x = np.pad(x, (0, 1200 - len(x))) + rng.normal(0, float(rng.choice([0.5, 30, 300, 3000])), 1200)
        rows.append(to_int16(x if i % 8 else np.sin(np.cumsum(rng.uniform(0.3, 1.5, 1200))) * 9000))
    blocks = np.stack(rows).astype(np.float32).reshape(-1, dtmf_analysis.SUB_SAMPLES)
    windows = dtmf_analysis.gate(blocks, dtmf_analysis.block_energy(blocks).reshape(64, -1))
    assert windows is not None
    dense = dtmf_analysis.features(*windows)
    lists = dtmf_floats.features_lists(*windows)
    gated = windows[2]
    assert 500 < gated.sum() < gated.size / 2  # the numpy path computes just the gated windows ...
    key, status, amp_low, amp_high, dev_low, dev_high = (np.array(column) for column in zip(*lists, strict=True))
    assert np.array_equal(key, np.where(gated, dense.key, -1))
    for got, want in ((status, dense.status), (amp_low, dense.amp_low), (amp_high, dense.amp_high),
                      (dev_low, dense.dev_low), (dev_high, dense.dev_high)):
        assert np.array_equal(got[gated], want[gated], equal_nan=True)
    everywhere = dtmf_analysis.features(windows[0], windows[1], np.ones_like(gated))  # ... or all of them
    for name in ("key", "status", "amp_low", "amp_high", "dev_low", "dev_high"):
        assert np.array_equal(getattr(everywhere, name)[gated], getattr(dense, name)[gated], equal_nan=True)


def test_the_energy_screen_skips_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipping the channels whose energy is under the gate changes no event.

    Levels around the gate and the acceptance threshold, noise bursts at the gate, fed alone and beside other channels,
    20 ms at a time.
    """
    rng = np.random.default_rng(21)
    rows = []
    for _ in range(8):
        parts = []
        for key in rng.choice(list(KEYS), 8):
            level = float(rng.uniform(-31, -24))
            parts += [dtmf_tone(str(key), float(rng.choice([30, 45, 60])), level, float(rng.uniform(-3, 3))),
                      rng.normal(0, dbm0_to_peak(float(rng.uniform(-42, -34))), int(rng.integers(80, 900)))]
        x = np.concatenate(parts)[:16000]
        rows.append(to_int16(np.pad(x, (0, 16000 - len(x)))))
    audio = np.stack(rows)

    def events() -> tuple[list[list[tuple[str, int, int]]], list[tuple[int, str, int, int]]]:
        alone = []
        for row in audio:
            det = DtmfDetector()
            alone.append([(e.key, e.start_sample, e.detected_sample)
                          for start in range(0, 16000, 160) for e in det.process(row[start:start + 160])])
        det = BatchDtmfDetector(len(audio))
        batched = [(c, e.key, e.start_sample, e.detected_sample)
                   for start in range(0, 16000, 160) for c, e in det.process(audio[:, start:start + 160])]
        return alone, batched

    screened = events()
    monkeypatch.setattr(engine.dtmf.detector, "VECTOR_MIN_CHANNELS", 1)  # the numpy paths, quiet ticks with keys held
    assert screened == events()
    monkeypatch.setattr(engine.dtmf.detector, "SCREEN_ENERGY", -1.0)  # every channel analysed every time
    assert screened == events()
    assert sum(map(len, screened[0])) > 20
    assert sorted((c, *e) for c, evs in enumerate(screened[0]) for e in evs) == sorted(screened[1])


# --- talk-off -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def speech_corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, np.ndarray]]:
    """Real espeak-ng speech from the engine's own TTS (not cached on disk), 8 kHz int16."""
    from engine.tts.synthesizer import Synthesizer, VoiceSettings

    syn = Synthesizer(tmp_path_factory.mktemp("tts"), disk_cache=False)
    out = []
    for voice, texts in VOICES:
        for rate in (130, 190, 280):
            for text in texts:
                out.append((f"{voice}@{rate}: {text[:24]}", syn.synthesize(text, VoiceSettings(voice, rate))))
    for voice, text in BEYOND:
        out.append((f"{voice}: {text[:24]}", syn.synthesize(text, VoiceSettings(voice, 175))))
    return out


def test_talk_off_speech(speech_corpus: list[tuple[str, np.ndarray]]) -> None:
    seconds = sum(len(a) for _, a in speech_corpus) / SAMPLE_RATE_HZ
    assert seconds > 180, seconds
    false = [(name, detect_keys(a)) for name, a in speech_corpus]
    assert [f for f in false if f[1]] == []
    louder = [(name, detect_keys(to_int16(a.astype(float) * 4))) for name, a in speech_corpus[::4]]
    assert [f for f in louder if f[1]] == []  # +12 dB, clipping



def test_talk_off_music() -> None:
    rng = np.random.default_rng(18)
    midi = lambda m: 440.0 * 2 ** ((m - 69) / 12)  # noqa: E731
    timbres = [(1, 0.5, 0.33, 0.25), (1, 0.3, 0.1), (1, 0.1, 0.05), (1, 0.6, 0.4, 0.3, 0.2, 0.1)]
    parts = []
    for timbre in timbres:  # melodies, some with vibrato
        for m in rng.integers(60, 96, 120):
            parts.append(note(rng, midi(m), float(rng.choice([0.12, 0.25, 0.5])), timbre,
                               vibrato=float(rng.choice([0.0, 0.006, 0.015]))))
    for _ in range(80):  # chords: triads, sevenths, open fifths and octaves
        root = int(rng.integers(55, 90))
        chord = [[0, 4, 7], [0, 3, 7], [0, 4, 7, 10], [0, 7, 12, 19], [0, 12]][int(rng.integers(5))]
        timbre = timbres[int(rng.integers(3))]
        seconds = float(rng.choice([0.3, 0.6, 1.0]))
        parts.append(sum(note(rng, midi(root + i), seconds, timbre, decay=1.0) for i in chord))
    t = np.arange(2 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    for lo, hi in [(600, 1000), (1100, 1700), (650, 1700), (1000, 650)]:  # sweeps with vibrato
        f = np.linspace(lo, hi, len(t)) * (1 + 0.02 * np.sin(2 * np.pi * 6 * t))
        phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE_HZ
        parts += [np.sin(phase), np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.3 * np.sin(3 * phase)]
    for _ in range(6):  # a low-band and a high-band sweep at once, crossing every key's pair
        fl = np.linspace(650, 990, len(t)) * (1 + 0.03 * np.sin(2 * np.pi * 5.5 * t))
        fh = np.linspace(1150, 1700, len(t)) * (1 + 0.03 * np.sin(2 * np.pi * 6.5 * t + 1))
        pl, ph = (2 * np.pi * np.cumsum(f) / SAMPLE_RATE_HZ for f in (fl, fh))
        parts.append(np.sin(pl) + 0.5 * np.sin(2 * pl) + np.sin(ph))
    music = np.concatenate([p / np.max(np.abs(p)) for p in parts]) * dbm0_to_peak(-6)
    assert len(music) / SAMPLE_RATE_HZ > 180
    assert detect_keys(to_int16(music)) == []


def test_a_held_wait_inside_a_tone_keeps_it_one_key_where_feeding_silence_cuts_it() -> None:
    """A jitter buffer that runs dry waits: its silent frames are held, so the key's 5 frames stay one tone."""
    tone = to_int16(dtmf_tone("4", 100, -8.0))  # 5 frames of 20 ms
    frames = [tone[i:i + 160] for i in range(0, 800, 160)]
    silence = np.zeros(160, dtype=np.int16)
    # the caller's frames as a starved playout delivers them: a wait after every frame of the tone
    played = [silence] * 3 + [f for frame in frames for f in (frame, silence, silence)] + [silence] * 6
    waits = {3 + 3 * i + j for i in range(5) for j in (1, 2)}
    held, cut = BatchDtmfDetector(2), []
    keys = []
    for tick, frame in enumerate(played):
        both = np.stack([frame, frame])
        hold = np.array([0]) if tick in waits else np.zeros(0, dtype=np.int64)
        for channel, event in held.process(both, hold):
            (keys if channel == 0 else cut).append(event)
    assert [e.key for e in keys] == ["4"]  # channel 0 heard the tone whole
    assert [e.key for e in cut] == []  # channel 1 was fed the waits' silence: 20 ms pieces, no key
    assert 3 * 160 <= keys[0].start_sample < keys[0].detected_sample <= len(played) * 160  # in the playout's time


def test_hold_needs_whole_sub_blocks() -> None:
    detector = BatchDtmfDetector(1)
    with pytest.raises(ValueError, match="whole sub-blocks"):
        detector.process(np.zeros((1, 100), dtype=np.int16), np.array([0]))

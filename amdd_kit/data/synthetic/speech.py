"""Speech: plan (what is said, when) -> envelope (drives the mouth) -> waveform.

A source-filter model: a glottal pulse train at the identity's pitch (with a declining, accented
contour) goes through four formant resonators whose frequencies move from vowel to vowel;
fricatives add noise above 3 kHz; syllables have an attack/decay envelope and phrases are
separated by pauses. The forged voices (cloned, TTS) are made here too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

from .identities import Identity


# (F1, F2, F3, F4) of five vowels for an average adult vocal tract, Hz
_VOWELS = np.array([[730, 1090, 2440, 3400], [530, 1840, 2480, 3500], [270, 2290, 3010, 3700],
                    [570, 840, 2410, 3300], [300, 870, 2240, 3300]], float)


_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 220.0])


@dataclass
class SpeechPlan:
    """Syllable timing of one utterance (seconds). ``consonant``: 0 none, 1 fricative, 2 plosive."""

    duration: float
    onsets: np.ndarray
    durs: np.ndarray
    vowels: np.ndarray
    consonant: np.ndarray
    accent: np.ndarray


def plan_speech(duration: float, rate: float, rng: np.random.Generator,
                start: float | None = None) -> SpeechPlan:
    """Syllables at ``rate`` per second, in phrases of 3-7 separated by 0.15-0.35 s pauses.

    Speech starts ``start`` seconds in (default: 0-0.08 s, i.e. no leading silence).
    """
    t = rng.uniform(0.0, 0.08) if start is None else start
    onsets, durs = [], []
    left_in_phrase = int(rng.integers(3, 8))
    while t < duration - 0.05:
        d = float(rng.uniform(0.75, 1.25) / rate)
        onsets.append(t)
        durs.append(d)
        t += d
        left_in_phrase -= 1
        if left_in_phrase == 0:
            t += rng.uniform(0.15, 0.35)
            left_in_phrase = int(rng.integers(3, 8))
    n = len(onsets)
    return SpeechPlan(duration, np.array(onsets), np.array(durs), rng.integers(0, 5, n),
                      rng.choice(3, n, p=[0.45, 0.35, 0.2]), rng.uniform(-1, 1, n))


def speech_envelope(plan: SpeechPlan, t: np.ndarray) -> np.ndarray:
    """Vowel amplitude envelope (0..1) of ``plan`` at times ``t`` (s): what opens the mouth."""
    env = np.zeros_like(t, dtype=float)
    for on, d, c in zip(plan.onsets, plan.durs, plan.consonant):
        v_on = on + (0.25 * d if c else 0.05 * d)      # the vowel follows the consonant
        x = (t - v_on) / max(d * 0.9 - (v_on - on), 1e-3)
        inside = (x >= 0) & (x <= 1)
        env[inside] = np.maximum(env[inside], np.sin(np.pi * x[inside]) ** 0.7)
    return env


def _consonant_envelope(plan: SpeechPlan, t: np.ndarray, kind: int) -> np.ndarray:
    env = np.zeros_like(t, dtype=float)
    for on, d, c in zip(plan.onsets, plan.durs, plan.consonant):
        if c != kind:
            continue
        length = 0.25 * d if kind == 1 else 0.025
        x = (t - on) / length
        inside = (x >= 0) & (x <= 1)
        env[inside] = np.sin(np.pi * x[inside]) if kind == 1 else np.exp(-4 * x[inside])
    return env


def synth_speech(ident: Identity, plan: SpeechPlan, sr: int, rng: np.random.Generator,
                 pitch_scale: float = 1.0, contour_scale: float = 1.0) -> np.ndarray:
    """Source-filter speech waveform for ``plan``: float32 ``[round(duration * sr)]``, peak ~0.6.

    Glottal pulses at the identity's pitch (declination, per-syllable accents, jitter) ->
    spectral tilt -> four time-varying formant resonators (Klatt-style cascade, updated every
    10 ms); plus aspiration, fricative noise (3-7.5 kHz) and plosive bursts.
    """
    n = int(round(plan.duration * sr))
    t = np.arange(n) / sr
    env = speech_envelope(plan, t)
    # pitch contour
    acc = np.zeros(n)
    for on, d, a in zip(plan.onsets, plan.durs, plan.accent):
        acc += a * np.exp(-0.5 * ((t - on - d / 2) / (d / 2)) ** 2)
    contour = 0.08 * acc - 0.12 * t / plan.duration + 0.02 * np.sin(2 * np.pi * 0.7 * t)
    f0 = ident.f0 * pitch_scale * (1 + contour_scale * contour)
    f0 *= 1 + 0.01 * signal.lfilter([0.05], [1, -0.95], rng.normal(0, 1, n))  # jitter
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    a = np.exp(-2 * np.pi * 200 / sr)
    source = signal.lfilter([1 - a], [1, -a], pulses) * 8.0          # -6 dB/oct tilt
    source += 0.04 * rng.normal(0, 1, n)                            # aspiration
    voiced = _formant_filter(source * env, plan, sr, ident.formant_scale)
    # fricatives and bursts
    hi = min(7500.0, 0.45 * sr)
    sos = signal.butter(4, [3000.0, hi], btype="bandpass", fs=sr, output="sos")
    fric = signal.sosfilt(sos, rng.normal(0, 1, n)) * _consonant_envelope(plan, t, 1)
    burst = rng.normal(0, 1, n) * _consonant_envelope(plan, t, 2)
    v = voiced / (np.abs(voiced).max() + 1e-9)
    y = v + 0.35 * fric / (np.abs(fric).max() + 1e-9) + 0.25 * burst / (np.abs(burst).max() + 1e-9)
    y = y / (np.abs(y).max() + 1e-9) * 0.6
    y += 10 ** (-58 / 20) * rng.normal(0, 1, n)                     # room noise, ~-58 dB
    return y.astype(np.float32)


def _formant_filter(x: np.ndarray, plan: SpeechPlan, sr: int, scale: float) -> np.ndarray:
    """Vowel-dependent vocal tract: a cascade of 4 resonators per vowel, cross-faded in time.

    Each vowel's (and a neutral schwa's) filter runs once over the whole signal; the output
    follows the syllables' vowel targets with 50 ms cross-fades (coarticulation).
    """
    t = np.arange(len(x)) / sr
    weights = np.zeros((len(_VOWELS) + 1, len(x)), np.float32)
    weights[-1] = 1.0                                             # neutral between syllables
    for on, d, vw in zip(plan.onsets, plan.durs, plan.vowels):
        inside = (t >= on) & (t < on + d)
        weights[vw, inside], weights[-1, inside] = 1.0, 0.0
    weights = uniform_filter1d(weights, max(1, int(0.05 * sr)), axis=1, mode="nearest")
    out = np.zeros(len(x))
    neutral = np.array([500.0, 1500.0, 2500.0, 3500.0])
    for targets, w in zip(list(_VOWELS) + [neutral], weights):
        y = x
        for f, bw in zip(targets * scale, _BANDWIDTHS):
            f = min(f, 0.45 * sr)
            r = np.exp(-np.pi * bw / sr)
            a1, a2 = -2 * r * np.cos(2 * np.pi * f / sr), r * r
            y = signal.lfilter([1 + a1 + a2], [1, a1, a2], y)
        out += w * y
    return out


def clone_voice(ident: Identity, plan: SpeechPlan, sr: int, rng: np.random.Generator,
                strength: float = 1.0) -> np.ndarray:
    """``rtvc``-style cloned voice of ``ident`` saying ``plan``: float32 ``[n]``.

    Pitch shifted by up to +-8 % with a flatter contour, then vocoder smearing (magnitude smoothed
    across frequency, phase partly randomised) and a steep low-pass at 4-5 kHz.
    """
    y = synth_speech(ident, plan, sr, rng, pitch_scale=float(rng.uniform(0.92, 1.08)),
                     contour_scale=0.4)
    y = vocoder_smear(y, sr, rng, strength)
    sos = signal.butter(10, float(rng.uniform(4000, 5000)), btype="lowpass", fs=sr, output="sos")
    y = signal.sosfiltfilt(sos, y)           # the vocoder's band limit (its noise floor too)
    return (y / (np.abs(y).max() + 1e-9) * 0.6).astype(np.float32)


#: Half-width of the vocoder's magnitude smoothing at ``strength`` 0: ``(1 + 8 strength)`` of
#: these, i.e. about 108-280 Hz for strengths 0.5-1.5 (a 44.1 kHz STFT bin of 2048 points).
SMEAR_STEP_HZ = 44_100 / 2048


def vocoder_smear(y: np.ndarray, sr: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Neural-vocoder-like smearing: smooth the STFT magnitude over frequency, jitter the phase.

    The smoothing is a box of ``2 (1 + 8 strength) SMEAR_STEP_HZ`` Hz (about 220-590 Hz) at
    every sample rate. (It used to be counted in STFT bins scaled by ``nper / 512``, but a bin is
    ``sr / nper`` Hz wide, so the box grew with the file's sample rate: 156-281 Hz at 16 kHz,
    258-633 Hz at 48 kHz. The weak 16 kHz clones were the rtvc clips a trained model missed.)
    """
    nper = int(2 ** np.ceil(np.log2(0.032 * sr)))
    _, _, z = signal.stft(y, fs=sr, nperseg=nper)
    mag, ph = np.abs(z), np.angle(z)
    width = 1 + 2 * int(round((1 + 8 * strength) * SMEAR_STEP_HZ / (sr / nper)))
    mag = signal.convolve(mag, np.ones((width, 1)) / width, mode="same")
    ph = ph + min(1.0, 0.5 * strength) * rng.uniform(-np.pi, np.pi, ph.shape)
    _, out = signal.istft(mag * np.exp(1j * ph), fs=sr, nperseg=nper)
    out = out[:len(y)]
    return np.pad(out, (0, len(y) - len(out)))


def tts_voice(ident: Identity, plan: SpeechPlan, sr: int, rng: np.random.Generator) -> np.ndarray:
    """LAV-DF held-out voice: monotone (no contour), shifted pitch, band-limited at 6-7 kHz."""
    y = synth_speech(ident, plan, sr, rng, pitch_scale=float(rng.uniform(0.85, 1.15)),
                     contour_scale=0.0)
    cut = min(float(rng.uniform(6000, 7000)), 0.45 * sr)
    y = signal.sosfiltfilt(signal.butter(8, cut, fs=sr, output="sos"), y)
    return (y / (np.abs(y).max() + 1e-9) * 0.6).astype(np.float32)

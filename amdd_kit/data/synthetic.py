"""A synthetic audio-visual deepfake corpus, rendered deterministically from a seed.

Real deepfake datasets are gated, so the kit renders its own: parametric talking faces with a
source-filter voice, "forged" by seven generators that mirror FakeAVCeleb's methods. Every clip is
written as a REAL media file (H.264 + AAC mp4, mpeg4 avi, JPEG frames + wav) in the folder layout
of the real dataset, so the real-dataset adapters (:mod:`amdd_kit.data.adapters`) read it unchanged.

What a clip is made of
----------------------
* **Identity** (:func:`make_identity`): head shape, skin tone, eyes with blinks, brows, nose, hair,
  shirt and a textured background; small head motion. The face is shaded like a lit face (eye
  sockets darker than the cheeks, lighter nose bridge, darker mouth, face brighter than the
  background) so that OpenCV's Haar frontal-face cascade finds it, as preprocessing needs.
* **Speech** (:func:`plan_speech`, :func:`synth_speech`): a source-filter model. A glottal pulse
  train at the identity's pitch (with a declining, accented contour) goes through four formant
  resonators whose frequencies move from vowel to vowel; fricatives add noise above 3 kHz;
  syllables have an attack/decay envelope and phrases are separated by pauses.
* **Articulation**: the mouth opening follows the speech envelope with a natural lag of 40-80 ms,
  the physical audio-visual coupling that forgeries break.

Generators and their traces (``METHOD_TRACES`` holds this table for notebooks)
---------------------------------------------------------------------------
Every trace strength is drawn per video (``strength`` in [0.5, 1.5]), so no single threshold
separates a method; no trace is a constant pixel or a label-coloured border.

=================== ===== ============================================ =========================================
method              cat.  video trace                                  audio trace
=================== ===== ============================================ =========================================
real                A     none (natural lip lag 40-80 ms)              none (full band up to 8 kHz and beyond)
rtvc                B     none (but lips no longer match the audio)    cloned voice: other utterance, flatter and
                                                                       shifted pitch, vocoder smearing (spectral
                                                                       smoothing + phase randomisation), low-pass
                                                                       at 4-5 kHz
faceswap            C     another identity's inner face blended in:    none
                          rendered at half resolution (soft next to
                          the sharp surroundings), visible seam at the
                          mask edge, colour/tone mismatch
fsgan               C     swap with a softer blend + up-sampling       none
                          checkerboard ((-1)^(x+y), 2-px period) inside
                          the face + slight blur
wav2lip             D     mouth region re-rendered at low resolution   cloned voice (as rtvc)
                          (down/up-sampled), driven by the fake audio
                          with zero lag
faceswap-wav2lip    D     faceswap + wav2lip                           cloned voice
fsgan-wav2lip       D     fsgan + wav2lip                              cloned voice
=================== ===== ============================================ =========================================

Held-out sets (generators never seen in training, identities never seen in training):

* ``lavdf/`` (LAV-DF layout): partial fakes, content edited only inside ``fake_periods``:
  ``lavdf-audio`` splices in a monotone TTS voice band-limited at 6-7 kHz; ``lavdf-visual``
  re-renders the mouth (another utterance's motion, low resolution, darker lips) there;
  ``lavdf-audiovisual`` does both.
* ``dftimit/`` (DeepfakeTIMIT + VidTIMIT layout): ``dftimit-hq`` / ``dftimit-lq``: a GAN-style
  swap with a wide soft blend, additive noise texture and the face rendered at 128 / 64 px.
  Silent mpeg4 .avi with the real audio in a .wav beside it; VidTIMIT reals as JPEG frames.
* ``dfdm/`` (DFDM layout, crf 23): five face-swap models, real audio: ``1faceswap`` (64-px face,
  hard mask, no colour correction), ``2lightweight`` (32-px face, strong blur),
  ``3iae`` (colour cast + sharp ring seam), ``4dfaker`` (rectangular mask, 8x8 block
  quantisation), ``5dfl_h128`` (sharp face with an unsharp-mask halo, smooth mask).

Balance: every training identity gets 2 real videos and one video per fake method, so the 7
attribution classes are balanced except real (2x); real:fake is 1:3 (FakeAVCeleb is ~1:42).
``size="tiny"``: 24 identities (192 videos, 72x72: the face fits the tiny config's 64 px
crop without resampling); ``"standard"``: 250 identities (2,000
videos, 224x224). Frame rates are mostly 25 fps (some 29.97 and 24), audio at 16/22.05/44.1/48 kHz,
some stereo, durations 2-3 s.

Shortcut (``shortcut="leading-silence"``, off by default): every fake FakeAVCeleb video's audio
starts with 0.2-0.4 s of near-silence, the known FakeAVCeleb shortcut (Smeu et al.,
arXiv 2412.00175). Reals start speaking within 0.1 s either way.

Determinism: every video has its own seed (corpus seed + dataset + index), so the corpus does
not depend on ``workers``; identity parameters depend only on (seed, identity index).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import wave
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from scipy import signal
from scipy.ndimage import uniform_filter1d

log = logging.getLogger(__name__)

LAYOUTS: tuple[str, ...] = ("fakeavceleb", "lavdf", "dftimit", "dfdm")
SIZES: dict[str, dict[str, int]] = {
    # identities = training identities; the held-out counts scale with them
    # tiny frames are 72 px so that the ~50 px face fits a 64 px crop at native scale (no
    # resampling: the checkerboard and seam reach the model); standard 224 px fits the paper's
    # 224 px crop the same way (see data/faces.crop_scale)
    "tiny": {"identities": 24, "frame": 72, "lavdf_originals": 10, "dftimit_subjects": 4,
             "dfdm_reals": 5, "dfdm_per_model": 5},
    "standard": {"identities": 250, "frame": 224, "lavdf_originals": 100, "dftimit_subjects": 16,
                 "dfdm_reals": 20, "dfdm_per_model": 40},
}
SHORTCUTS = (None, "leading-silence")

RACES = ("African", "Asian (East)", "Asian (South)", "Caucasian (American)", "Caucasian (European)")
GENDERS = ("men", "women")
TYPES = {"A": "RealVideo-RealAudio", "B": "RealVideo-FakeAudio", "C": "FakeVideo-RealAudio",
         "D": "FakeVideo-FakeAudio"}
FAKEAVCELEB_METHODS: dict[str, str] = {  # method -> category letter
    "real": "A", "rtvc": "B", "faceswap": "C", "fsgan": "C", "wav2lip": "D",
    "faceswap-wav2lip": "D", "fsgan-wav2lip": "D",
}
DFDM_MODELS: dict[str, str] = {  # file tag -> swap style
    "1faceswap": "dfdm-faceswap", "2lightweight": "dfdm-lightweight", "3iae": "dfdm-iae",
    "4dfaker": "dfdm-dfaker", "5dfl_h128": "dfdm-dfl-h128",
}

#: method -> dataset, category, video trace, audio trace (printable as a table).
METHOD_TRACES: dict[str, dict[str, str]] = {
    "real": dict(dataset="fakeavceleb", category="A (RVRA)", video="none; lips follow the "
                 "speech envelope with a 40-80 ms lag", audio="none; full band"),
    "rtvc": dict(dataset="fakeavceleb", category="B (RVFA)", video="none, but the lips no longer "
                 "match the (new) speech", audio="cloned voice: other utterance, flatter/shifted "
                 "pitch, vocoder smearing, low-pass 4-5 kHz"),
    "faceswap": dict(dataset="fakeavceleb", category="C (FVRA)", video="donor face blended in at "
                     "half resolution: soft face, seam at the mask edge, colour/tone mismatch", audio="none"),
    "fsgan": dict(dataset="fakeavceleb", category="C (FVRA)", video="swap with softer blend + "
                  "2-px up-sampling checkerboard in the face + slight blur", audio="none"),
    "wav2lip": dict(dataset="fakeavceleb", category="D (FVFA)", video="mouth re-rendered at low "
                    "resolution, driven by the fake audio with zero lag", audio="cloned voice"),
    "faceswap-wav2lip": dict(dataset="fakeavceleb", category="D (FVFA)",
                             video="faceswap + wav2lip mouth", audio="cloned voice"),
    "fsgan-wav2lip": dict(dataset="fakeavceleb", category="D (FVFA)",
                          video="fsgan + wav2lip mouth", audio="cloned voice"),
    "lavdf-audio": dict(dataset="lavdf", category="RVFA (partial)", video="none",
                        audio="monotone TTS voice band-limited at 6-7 kHz, only inside "
                        "fake_periods"),
    "lavdf-visual": dict(dataset="lavdf", category="FVRA (partial)", video="mouth re-rendered "
                         "(other motion, low resolution, darker lips) inside fake_periods",
                         audio="none"),
    "lavdf-audiovisual": dict(dataset="lavdf", category="FVFA (partial)",
                              video="as lavdf-visual", audio="as lavdf-audio"),
    "dftimit-hq": dict(dataset="dftimit", category="FVRA", video="GAN swap, 128-px face, wide soft "
                       "blend, additive noise texture", audio="none (real wav beside the video)"),
    "dftimit-lq": dict(dataset="dftimit", category="FVRA", video="GAN swap, 64-px face, wide soft "
                       "blend, additive noise texture", audio="none (real wav beside the video)"),
    "dfdm-faceswap": dict(dataset="dfdm", category="FVRA", video="64-px face, hard mask, no colour "
                          "correction", audio="none"),
    "dfdm-lightweight": dict(dataset="dfdm", category="FVRA", video="32-px face, strong blur",
                             audio="none"),
    "dfdm-iae": dict(dataset="dfdm", category="FVRA", video="colour cast + sharp ring seam",
                     audio="none"),
    "dfdm-dfaker": dict(dataset="dfdm", category="FVRA", video="rectangular mask, 8x8 block "
                        "quantisation", audio="none"),
    "dfdm-dfl-h128": dict(dataset="dfdm", category="FVRA", video="sharp face with unsharp-mask "
                          "halo, smooth mask", audio="none"),
}

# ============================================================================================
# Identities
# ============================================================================================
_SKIN = {  # RGB palettes per race folder (jittered per identity)
    "African": ((110, 74, 52), (140, 98, 70), (92, 62, 45)),
    "Asian (East)": ((232, 200, 170), (215, 180, 145), (240, 210, 185)),
    "Asian (South)": ((175, 128, 95), (160, 115, 85), (195, 150, 115)),
    "Caucasian (American)": ((235, 200, 178), (222, 184, 160), (242, 212, 190)),
    "Caucasian (European)": ((238, 205, 185), (225, 190, 165), (245, 218, 200)),
}


_HAIR = ((20, 15, 12), (45, 30, 20), (70, 45, 25), (110, 75, 40), (150, 110, 60), (90, 40, 20),
         (35, 35, 40))


@dataclass(frozen=True)
class Identity:
    """Parameters of one synthetic person (all sizes are fractions of the frame height)."""

    name: str                      # "id00042"
    race: str
    gender: str
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int                # 0 short, 1 long sides, 2 receding
    shirt: tuple[float, float, float]
    bg_seed: int
    bg_level: float                # background brightness relative to the skin
    face_w: float                  # half-width of the head ellipse
    face_h: float                  # half-height
    eye_dx: float                  # eye offset from the centre, fraction of face_w
    eye_y: float                   # eye height, fraction of face_h (negative = above centre)
    eye_w: float
    mouth_w: float
    nose: float
    f0: float                      # mean pitch in Hz
    formant_scale: float           # vocal tract length factor
    speech_rate: float             # syllables per second


def make_identity(index: int, seed: int = 0, name: str | None = None) -> Identity:
    """Draw identity number ``index`` of corpus ``seed`` (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
    race = RACES[index % len(RACES)]
    gender = GENDERS[(index // len(RACES)) % 2]
    skin = np.array(_SKIN[race][rng.integers(3)], float) * rng.uniform(0.93, 1.05, 3)
    women = gender == "women"
    return Identity(
        name=name or f"id{index:05d}", race=race, gender=gender,
        skin=tuple(np.clip(skin, 0, 255)),
        hair=tuple(np.array(_HAIR[rng.integers(len(_HAIR))], float) * rng.uniform(0.85, 1.15, 3)),
        hair_style=int(rng.integers(3)) if not women else int(rng.choice([0, 1, 1])),
        shirt=tuple(rng.uniform(30, 210, 3)),
        bg_seed=int(rng.integers(2**31)), bg_level=float(rng.uniform(0.35, 0.6)),
        face_w=float(rng.uniform(0.24, 0.28)), face_h=float(rng.uniform(0.32, 0.36)),
        eye_dx=float(rng.uniform(0.34, 0.42)), eye_y=float(rng.uniform(-0.21, -0.15)),
        eye_w=float(rng.uniform(0.15, 0.19)), mouth_w=float(rng.uniform(0.28, 0.38)),
        nose=float(rng.uniform(0.18, 0.26)),
        f0=float(rng.uniform(185, 235) if women else rng.uniform(95, 140)),
        formant_scale=float(rng.uniform(1.05, 1.15) if women else rng.uniform(0.9, 1.0)),
        speech_rate=float(rng.uniform(3.5, 5.0)),
    )


# ============================================================================================
# Speech: plan (what is said, when) -> envelope (drives the mouth) -> waveform
# ============================================================================================
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


def vocoder_smear(y: np.ndarray, sr: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Neural-vocoder-like smearing: smooth the STFT magnitude over frequency, jitter the phase."""
    nper = int(2 ** np.ceil(np.log2(0.032 * sr)))
    _, _, z = signal.stft(y, fs=sr, nperseg=nper)
    mag, ph = np.abs(z), np.angle(z)
    width = 1 + 2 * int(round(1 + 2 * strength * nper / 512))
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


# ============================================================================================
# Video: head motion, blinks, frame rendering
# ============================================================================================
@dataclass
class Motion:
    """Per-frame pose: offsets ``dx, dy`` (fraction of the height), ``scale``, eye ``blink`` 0..1."""

    dx: np.ndarray
    dy: np.ndarray
    scale: np.ndarray
    blink: np.ndarray


def make_motion(n: int, fps: float, rng: np.random.Generator) -> Motion:
    """Small smooth head motion (+-3 % of the frame) and a blink every 1.5-4 s."""
    t = np.arange(n) / fps

    def wobble(amp: float) -> np.ndarray:
        f1, f2 = rng.uniform(0.2, 0.6), rng.uniform(0.7, 1.4)
        return amp * (0.7 * np.sin(2 * np.pi * f1 * t + rng.uniform(0, 6.3))
                      + 0.3 * np.sin(2 * np.pi * f2 * t + rng.uniform(0, 6.3)))

    blink = np.zeros(n)
    tb = rng.uniform(0.2, 1.5)
    while tb < t[-1] + 0.2 if n else False:
        blink = np.maximum(blink, np.clip(1 - np.abs(t - tb) / 0.08, 0, 1))
        tb += rng.uniform(1.5, 4.0)
    return Motion(wobble(0.03), wobble(0.02), 1 + wobble(0.03), blink)


def mouth_track(plan: SpeechPlan, n: int, fps: float, lag: float) -> np.ndarray:
    """Mouth opening per video frame: the speech envelope ``lag`` seconds earlier (0..1)."""
    t = np.arange(n) / fps
    # the envelope averaged over each frame's exposure (1/fps) before the lag
    sub = np.linspace(-0.5 / fps, 0.5 / fps, 5)
    return speech_envelope(plan, (t[:, None] + sub[None, :] - lag).ravel()).reshape(n, 5).mean(1)


@dataclass(frozen=True)
class Geometry:
    """Where the head is in one frame, in pixels: centre (cx, cy), half-axes (fw, fh)."""

    cx: float
    cy: float
    fw: float
    fh: float


def frame_geometry(ident: Identity, motion: Motion, i: int, width: int, height: int) -> Geometry:
    s = motion.scale[i]
    return Geometry(width / 2 + motion.dx[i] * height, height * 0.5 + motion.dy[i] * height,
                    ident.face_w * height * s, ident.face_h * height * s)


def _col(c: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in c)


def background(ident: Identity, width: int, height: int) -> np.ndarray:
    """Static textured background, float32 ``[H, W, 3]`` (darker than the face)."""
    rng = np.random.default_rng(ident.bg_seed)
    lum = float(np.mean(ident.skin))
    base = lum * ident.bg_level * rng.uniform(0.7, 1.3, 3)
    coarse = cv2.resize(rng.normal(0, 1, (6, 8, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.resize(rng.normal(0, 1, (height // 4, width // 4, 3)).astype(np.float32),
                      (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(base + 0.12 * lum * coarse + 0.04 * lum * fine, 0, 255).astype(np.float32)


def render_frame(ident: Identity, g: Geometry, mouth: float, blink: float, bg: np.ndarray,
                 face: Identity | None = None) -> np.ndarray:
    """One RGB frame float32 ``[H, W, 3]`` (0..255, before noise).

    ``ident`` gives head outline, hair, shirt and background; ``face`` (default ``ident``) gives
    the inner face: skin tone, eyes, brows, nose, mouth shape -- a face swap renders the same pose
    with another ``face``.
    """
    face = face or ident
    height, width = bg.shape[:2]
    img = bg.copy()
    cx, cy, fw, fh = g.cx, g.cy, g.fw, g.fh
    c = lambda x, y: (int(round(x)), int(round(y)))  # noqa: E731
    skin = np.array(ident.skin, np.float32)
    fskin = np.array(face.skin, np.float32)
    cv2.ellipse(img, c(cx, height * 1.05), c(height * 0.42, height * 0.25), 0, 0, 360,
                _col(ident.shirt), -1, cv2.LINE_AA)
    cv2.rectangle(img, c(cx - fw * 0.45, cy), c(cx + fw * 0.45, cy + fh * 1.3), _col(skin * 0.8), -1)
    if ident.hair_style == 1:   # long hair falls beside the face
        cv2.ellipse(img, c(cx, cy + fh * 0.1), c(fw * 1.18, fh * 1.08), 0, 0, 360,
                    _col(ident.hair), -1, cv2.LINE_AA)
    cv2.ellipse(img, c(cx, cy - fh * 0.12), c(fw * 1.1, fh * 1.02), 0, 180, 360,
                _col(ident.hair), -1, cv2.LINE_AA)
    # shaded face: side fall-off, dark eye sockets, light nose bridge and cheeks
    x0, x1 = max(0, int(cx - fw) - 2), min(width, int(cx + fw) + 3)
    y0, y1 = max(0, int(cy - fh) - 2), min(height, int(cy + fh) + 3)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = (xx - cx) / fw, (yy - cy) / fh
    ey, ex = face.eye_y, face.eye_dx
    shade = 1.0 - 0.25 * u ** 2 - 0.08 * np.clip(v, 0, None)
    for sgn in (-1, 1):
        shade -= 0.35 * np.exp(-(((u - sgn * ex) / 0.28) ** 2 + ((v - ey) / 0.13) ** 2))
        shade += 0.06 * np.exp(-(((u - sgn * 0.45) / 0.2) ** 2 + ((v - 0.2) / 0.15) ** 2))
    shade += 0.12 * np.exp(-((u / 0.10) ** 2 + ((v - 0.02) / 0.3) ** 2))
    mask = np.zeros((height, width), np.float32)
    cv2.ellipse(mask, c(cx, cy), c(fw, fh), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    m = mask[y0:y1, x0:x1, None]
    # skin at the outline keeps the head's own tone; the inner face carries the face's tone
    r = np.sqrt(u ** 2 + v ** 2)[..., None]
    tone = np.where(r > 0.93, skin, fskin) if face is not ident else fskin
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - m) + tone * shade[..., None] * m
    hair_top = (fw * 0.95, fh * (0.22 if ident.hair_style == 2 else 0.3))
    cv2.ellipse(img, c(cx, cy - fh * 0.78), c(*hair_top), 0, 180, 360, _col(ident.hair), -1,
                cv2.LINE_AA)
    th = max(1, int(round(height * 0.012)))
    for sgn in (-1, 1):
        ecx, ecy = cx + sgn * ex * fw, cy + ey * fh
        eh = max(1, int(round(fh * 0.07 * (1 - 0.9 * blink))))
        white = _col(0.45 * fskin + 0.55 * np.array([215, 210, 205]))
        cv2.ellipse(img, c(ecx, ecy), c(fw * face.eye_w, eh), 0, 0, 360, white, -1, cv2.LINE_AA)
        cv2.circle(img, c(ecx, ecy), max(1, int(round(min(fh * 0.075, eh)))), (30, 20, 15), -1,
                   cv2.LINE_AA)
        cv2.ellipse(img, c(ecx, ecy - eh * 0.6), c(fw * (face.eye_w + 0.02), max(1, eh * 0.7)),
                    0, 180, 360, (25, 18, 15), th, cv2.LINE_AA)
        cv2.ellipse(img, c(ecx, ecy - fh * 0.14), c(fw * 0.22, fh * 0.05), 0, 190, 350,
                    _col(face.hair), max(1, int(round(height * 0.015))), cv2.LINE_AA)
        cv2.circle(img, c(cx + sgn * fw * 0.1, cy + fh * face.nose), max(1, int(height * 0.008)),
                   _col(fskin * 0.45), -1, cv2.LINE_AA)
    mh = max(1.0, fh * (0.03 + 0.14 * mouth))
    cv2.ellipse(img, c(cx, cy + fh * 0.5), c(fw * face.mouth_w, mh), 0, 0, 360, (60, 20, 25), -1,
                cv2.LINE_AA)
    return img


def face_mask(g: Geometry, height: int, width: int, inner: float = 0.88, feather: float = 0.02,
              rect: bool = False) -> np.ndarray:
    """Blend mask float32 ``[H, W]`` covering the inner face (eyes to chin), feathered.

    ``feather`` is the Gaussian sigma as a fraction of the face width (0 = hard edge).
    """
    m = np.zeros((height, width), np.float32)
    c = (int(round(g.cx)), int(round(g.cy + 0.06 * g.fh)))
    if rect:
        cv2.rectangle(m, (int(c[0] - 0.7 * g.fw), int(c[1] - 0.62 * g.fh)),
                      (int(c[0] + 0.7 * g.fw), int(c[1] + 0.78 * g.fh)), 1.0, -1)
    else:
        cv2.ellipse(m, c, (int(g.fw * inner), int(g.fh * inner * 0.92)), 0, 0, 360, 1.0, -1,
                    cv2.LINE_AA)
    sigma = feather * g.fw
    return cv2.GaussianBlur(m, (0, 0), sigma) if sigma > 0.3 else m


def mouth_box(g: Geometry, height: int, width: int) -> tuple[int, int, int, int]:
    """Mouth region (x0, y0, x1, y1) that lip-sync generators re-render."""
    x0, x1 = int(g.cx - 0.55 * g.fw), int(g.cx + 0.55 * g.fw)
    y0, y1 = int(g.cy + 0.28 * g.fh), int(g.cy + 0.78 * g.fh)
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


# ============================================================================================
# Generators (video side)
# ============================================================================================
@dataclass(frozen=True)
class SwapStyle:
    """How a face-swap generator blends a donor face; every amount is scaled by the strength."""

    feather: float = 0.02      # mask blur (fraction of face width): small = visible seam
    inner: float = 0.88        # mask size relative to the head
    tone: float = 0.10         # colour/tone mismatch of the inner face
    face_res: int = 0          # render the face at this many pixels, then resize (0 = native)
    blur: float = 0.0          # Gaussian sigma (px) on the swapped face
    checker: float = 0.0       # amplitude (grey levels) of the 2-px up-sampling checkerboard
    noise: float = 0.0         # std of a GAN-ish noise texture inside the face
    block: int = 0             # block size of coarse quantisation (0 = none)
    sharpen: float = 0.0       # unsharp-mask amount (halo)
    rect: bool = False         # rectangular mask


SWAP_STYLES: dict[str, SwapStyle] = {
    # the autoencoder works at half the face's resolution: its output is soft next to the
    # camera-sharp surroundings (with the seam and the tone step, the classic face-swap traces)
    "faceswap": SwapStyle(feather=0.005, tone=0.25, face_res=64),
    "fsgan": SwapStyle(feather=0.08, tone=0.04, blur=0.6, checker=8.0),
    "dftimit-hq": SwapStyle(feather=0.15, inner=0.95, tone=0.03, face_res=128, noise=5.0),
    "dftimit-lq": SwapStyle(feather=0.15, inner=0.95, tone=0.03, face_res=64, noise=5.0),
    "dfdm-faceswap": SwapStyle(feather=0.0, tone=0.10, face_res=64),
    "dfdm-lightweight": SwapStyle(feather=0.05, tone=0.05, face_res=32, blur=1.0),
    "dfdm-iae": SwapStyle(feather=0.0, inner=0.8, tone=0.15),
    "dfdm-dfaker": SwapStyle(feather=0.01, tone=0.03, block=8, rect=True),
    "dfdm-dfl-h128": SwapStyle(feather=0.06, tone=0.04, sharpen=1.2),
}


def swap_face(src: np.ndarray, donor: np.ndarray, g: Geometry, style: SwapStyle, strength: float,
              tint: np.ndarray) -> np.ndarray:
    """Blend the donor rendering's inner face into ``src`` (both float32 ``[H, W, 3]``).

    ``tint`` (per-channel multiplier, fixed per video) is the colour mismatch; the mask edge is
    the seam. Resolution loss, blur, checkerboard, noise, blocks and halos follow ``style``.
    """
    height, width = src.shape[:2]
    face = donor * tint[None, None, :]
    x0, x1 = max(0, int(g.cx - g.fw * 1.1)), min(width, int(g.cx + g.fw * 1.1) + 1)
    y0, y1 = max(0, int(g.cy - g.fh * 1.1)), min(height, int(g.cy + g.fh * 1.1) + 1)
    crop = face[y0:y1, x0:x1]
    if style.face_res:  # the generator worked at a lower resolution
        side = max(4, int(style.face_res * (y1 - y0) / 128 / max(1.0, height / 128)))
        side = min(side, style.face_res)
        if side < (y1 - y0):
            small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
            crop = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    if style.blur:
        crop = cv2.GaussianBlur(crop, (0, 0), style.blur * strength)
    if style.sharpen:
        soft = cv2.GaussianBlur(crop, (0, 0), 1.5)
        crop = crop + style.sharpen * strength * (crop - soft)
    if style.block:
        b = style.block
        hh, ww = crop.shape[:2]
        small = cv2.resize(crop, (max(1, ww // b), max(1, hh // b)), interpolation=cv2.INTER_AREA)
        blocky = cv2.resize(small, (ww, hh), interpolation=cv2.INTER_NEAREST)
        crop = 0.6 * crop + 0.4 * blocky * min(1.0, 0.5 + 0.4 * strength)
        crop += (1 - 0.6 - 0.4 * min(1.0, 0.5 + 0.4 * strength)) * face[y0:y1, x0:x1]
    face = face.copy()
    face[y0:y1, x0:x1] = crop
    if style.checker:
        yy, xx = np.mgrid[0:height, 0:width]
        face += style.checker * strength * np.where((xx + yy) % 2 == 0, 1.0, -1.0)[..., None]
    if style.noise:
        rng = np.random.default_rng(int(g.cx * 1000 + g.cy * 7))
        face += style.noise * strength * rng.normal(0, 1, (height, width, 1))
    m = face_mask(g, height, width, style.inner, style.feather, style.rect)[..., None]
    return src * (1 - m) + face * m


def degrade_mouth(frame: np.ndarray, g: Geometry, factor: float, darken: float = 0.0) -> np.ndarray:
    """Re-render the mouth region at low resolution (down by ``factor``, back up), soft-edged."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = mouth_box(g, height, width)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return frame
    region = frame[y0:y1, x0:x1]
    small = cv2.resize(region, (max(2, int((x1 - x0) / factor)), max(2, int((y1 - y0) / factor))),
                       interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) * (1 - darken)
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.rectangle(m, (1, 1), (x1 - x0 - 2, y1 - y0 - 2), 1.0, -1)
    m = cv2.GaussianBlur(m, (0, 0), 1.0)[..., None]
    out = frame.copy()
    out[y0:y1, x0:x1] = region * (1 - m) + up * m
    return out


# ============================================================================================
# One video: spec -> frames + audio
# ============================================================================================
@dataclass
class VideoSpec:
    """Everything needed to render and write one video (picklable, for the process pool)."""

    rel: str                        # output path relative to the corpus folder
    method: str                     # generator (see METHOD_TRACES)
    ident: int                      # identity index of the person in the source video
    seed: int                       # source video seed: pose, utterance, noise
    fake_seed: int                  # seed of the generator's own randomness
    corpus_seed: int
    width: int
    height: int
    fps: Fraction
    sr: int
    channels: int
    duration: float
    donor: int | None = None        # face donor identity index (swaps)
    shortcut: bool = False          # leading-silence shortcut
    periods: list[list[float]] = field(default_factory=list)  # LAV-DF partial fakes
    container: str = "mp4"          # mp4 | avi (silent, + wav) | jpg (VidTIMIT frames, + wav)
    wav_rel: str = ""               # where the wav goes (avi / jpg)
    crf: int = 18
    ident_name: str | None = None

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * float(self.fps)))

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sr))


def render_video(spec: VideoSpec) -> tuple[np.ndarray, np.ndarray]:
    """Render ``spec``: frames uint8 ``[T, H, W, 3]`` and audio float32 ``[n, channels]``."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.corpus_seed, 2, spec.seed]))
    frng = np.random.default_rng(np.random.SeedSequence([spec.corpus_seed, 3, spec.fake_seed]))
    ident = make_identity(spec.ident, spec.corpus_seed, spec.ident_name)
    fps, n, W, H = float(spec.fps), spec.n_frames, spec.width, spec.height
    method = spec.method
    strength = float(frng.uniform(0.5, 1.5))

    plan = plan_speech(spec.duration, ident.speech_rate, rng)
    motion = make_motion(n, fps, rng)
    lag = float(rng.uniform(0.04, 0.08))
    mouth = mouth_track(plan, n, fps, lag)
    audio = synth_speech(ident, plan, spec.sr, rng)
    noise_rng = np.random.default_rng(np.random.SeedSequence([spec.corpus_seed, 4, spec.seed]))

    lipsync = method in ("wav2lip", "faceswap-wav2lip", "fsgan-wav2lip")
    if method == "rtvc" or lipsync:
        fake_plan = plan_speech(spec.duration, ident.speech_rate * frng.uniform(0.9, 1.1), frng)
        audio = clone_voice(ident, fake_plan, spec.sr, frng, strength)
        if lipsync:  # the lips are driven by the fake audio, with no natural lag
            mouth = mouth_track(fake_plan, n, fps, 0.0)
    in_period = np.zeros(n, bool)
    if method.startswith("lavdf-"):
        t = np.arange(n) / fps
        for s, e in spec.periods:
            in_period |= (t >= s) & (t < e)
        other = plan_speech(spec.duration, ident.speech_rate, frng)
        if method in ("lavdf-audio", "lavdf-audiovisual"):
            audio = _splice(audio, tts_voice(ident, other, spec.sr, frng), spec.periods, spec.sr)
        if method in ("lavdf-visual", "lavdf-audiovisual"):
            mouth = np.where(in_period, mouth_track(other, n, fps, 0.0), mouth)

    swap = next((s for s in SWAP_STYLES if method == s or method.startswith(s + "-")), None)
    donor = make_identity(spec.donor, spec.corpus_seed) if spec.donor is not None else None
    if donor is not None:  # generators colour-match the donor face half-way to the target
        donor = replace(donor, skin=_col(0.5 * np.array(ident.skin) + 0.5 * np.array(donor.skin)))
    tint = 1 + (SWAP_STYLES[swap].tone * strength * _unit3(frng) if swap else 0)
    if swap:
        tint = tint * (1 + SWAP_STYLES[swap].tone * strength * 0.5 * frng.choice([-1, 1]))
    mouth_factor = float(frng.uniform(4.0, 6.0)) * (0.8 + 0.2 * strength)
    bg = background(ident, W, H)
    frames = np.empty((n, H, W, 3), np.uint8)
    for i in range(n):
        g = frame_geometry(ident, motion, i, W, H)
        # the camera: optics blur, then sensor noise; generators work on the captured frames
        img = cv2.GaussianBlur(render_frame(ident, g, mouth[i], motion.blink[i], bg), (0, 0), 0.6)
        img += 1.5 * noise_rng.standard_normal(img.shape, dtype=np.float32)
        if swap:
            assert donor is not None, f"{method} needs a donor identity"
            dimg = render_frame(ident, g, mouth[i], motion.blink[i], bg, face=donor)
            dimg = cv2.GaussianBlur(dimg, (0, 0), 0.6)
            img = swap_face(img, dimg, g, SWAP_STYLES[swap], strength, tint)
        if lipsync:
            img = degrade_mouth(img, g, mouth_factor)
        elif in_period[i]:
            img = degrade_mouth(img, g, mouth_factor * 0.8, darken=0.15)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)

    if spec.shortcut:
        k = int(frng.uniform(0.2, 0.4) * spec.sr)
        fade = np.r_[np.full(k, 10 ** (-70 / 20)), np.linspace(10 ** (-70 / 20), 1, int(0.01 * spec.sr))]
        audio = audio.copy()
        audio[:len(fade)] *= fade[:len(audio)]
    if spec.channels == 2:  # a second microphone: slightly delayed and quieter
        d = int(0.0005 * spec.sr)
        audio2 = np.r_[np.zeros(d, np.float32), audio[:len(audio) - d]] * 0.9
        out_audio = np.stack([audio, audio2], axis=1)
    else:
        out_audio = audio[:, None]
    return frames, out_audio.astype(np.float32)


def _unit3(rng: np.random.Generator) -> np.ndarray:
    v = rng.uniform(-1, 1, 3)
    return v / (np.abs(v).max() + 1e-9)


def _splice(audio: np.ndarray, new: np.ndarray, periods: list[list[float]], sr: int) -> np.ndarray:
    """Replace ``audio`` by ``new`` inside ``periods`` with 10 ms cross-fades."""
    w = np.zeros(len(audio))
    ramp = max(1, int(0.01 * sr))
    for s, e in periods:
        a, b = int(s * sr), int(e * sr)
        w[a:b] = 1
    w = np.convolve(w, np.ones(ramp) / ramp, mode="same")
    return (audio * (1 - w) + new * w).astype(np.float32)


# ============================================================================================
# Writing media files (atomically)
# ============================================================================================
def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def write_video(path: Path, frames: np.ndarray, fps: Fraction, audio: np.ndarray | None = None,
                sr: int = 16000, codec: str = "libx264", fmt: str = "mp4", crf: int = 18) -> None:
    """Write frames uint8 ``[T, H, W, 3]`` (+ audio float32 ``[n, ch]`` as AAC) with PyAV.

    Written to a temporary name first and renamed, so a crash never leaves a half file.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with av.open(str(tmp), "w", format=fmt) as box:
            vs = box.add_stream(codec, rate=fps)
            vs.width, vs.height = frames.shape[2], frames.shape[1]
            vs.pix_fmt = "yuv420p"
            if codec == "libx264":
                # one thread, no lookahead threads. NOTE: even so, libx264 here is not always
                # bit-reproducible (rare pixels differ by 1-2 levels between runs); the rendered
                # frames and the audio are exactly reproducible.
                vs.options = {"crf": str(crf), "preset": "veryfast",
                              "x264-params": "threads=1:lookahead-threads=1"}
                vs.codec_context.thread_count = 1
            else:
                vs.bit_rate = 1_500_000
                vs.codec_context.thread_count = 1
            ast = None
            if audio is not None:
                ast = box.add_stream("aac", rate=sr)
                ast.layout = "stereo" if audio.shape[1] == 2 else "mono"
                ast.bit_rate = 96_000
            for f in frames:
                box.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            box.mux(vs.encode(None))
            if ast is not None:
                planar = np.ascontiguousarray(audio.T.astype(np.float32))
                for i in range(0, planar.shape[1], 1024):
                    af = av.AudioFrame.from_ndarray(planar[:, i:i + 1024], format="fltp",
                                                    layout=ast.layout.name)
                    af.sample_rate, af.pts = sr, i
                    box.mux(ast.encode(af))
                box.mux(ast.encode(None))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    """16-bit PCM wav of float audio ``[n]`` or ``[n, ch]``, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = audio if audio.ndim == 2 else audio[:, None]
    pcm = (np.clip(a, -1, 1) * 32767).astype("<i2")
    tmp = _tmp(path)
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(a.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def write_jpeg_dir(path: Path, frames: np.ndarray) -> None:
    """VidTIMIT-style folder of extension-less JPEG frames ``001, 002, ...`` (atomic rename)."""
    tmp = _tmp(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for i, f in enumerate(frames, 1):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {path}/{i:03d}")
        (tmp / f"{i:03d}").write_bytes(buf.tobytes())
    os.replace(tmp, path)


def make_video(spec: VideoSpec, out_dir: str | Path) -> str:
    """Render ``spec`` and write its file(s) under ``out_dir``; skip when already there."""
    out_dir = Path(out_dir)
    target = out_dir / spec.rel
    if target.exists() and (not spec.wav_rel or (out_dir / spec.wav_rel).exists()):
        return spec.rel
    frames, audio = render_video(spec)
    if spec.container == "mp4":
        write_video(target, frames, spec.fps, audio, spec.sr, crf=spec.crf)
    else:
        if spec.wav_rel:
            write_wav(out_dir / spec.wav_rel, audio, spec.sr)
        if spec.container == "avi":
            write_video(target, frames, spec.fps, None, codec="mpeg4", fmt="avi")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_jpeg_dir(target, frames)
    return spec.rel


def _make_video_safe(spec: VideoSpec, out_dir: str) -> tuple[str, str]:
    try:
        make_video(spec, out_dir)
        return spec.rel, ""
    except Exception as e:  # noqa: BLE001 -- reported by make_corpus, the others go on
        return spec.rel, f"{type(e).__name__}: {e}"


# ============================================================================================
# Corpus plans
# ============================================================================================
def _media_choice(rng: np.random.Generator) -> tuple[Fraction, int, int, float]:
    fps = [Fraction(25), Fraction(30000, 1001), Fraction(24)][rng.choice(3, p=[0.8, 0.1, 0.1])]
    sr = int(rng.choice([16000, 22050, 44100, 48000]))
    channels = 2 if rng.random() < 0.2 else 1
    return fps, sr, channels, float(np.round(rng.uniform(2.0, 3.0), 2))


def _counts(size: str, n_identities: int | None) -> dict[str, int]:
    base = dict(SIZES[size])
    if n_identities is not None:
        r = n_identities / base["identities"]
        base = {"identities": n_identities, "frame": base["frame"],
                "lavdf_originals": max(2, round(base["lavdf_originals"] * r)),
                "dftimit_subjects": max(1, round(base["dftimit_subjects"] * r)),
                "dfdm_reals": max(1, round(base["dfdm_reals"] * r)),
                "dfdm_per_model": max(1, round(base["dfdm_per_model"] * r))}
    return base


def plan_fakeavceleb(seed: int, n_ids: int, frame: int, shortcut: bool
                     ) -> tuple[list[VideoSpec], list[list[str]]]:
    """Video specs + meta_data.csv rows of the training corpus (FakeAVCeleb v1.2 layout)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10]))
    id_numbers = rng.choice(np.arange(1, 100_000), size=n_ids, replace=False)
    idents = [make_identity(i, seed, f"id{id_numbers[i]:05d}") for i in range(n_ids)]
    specs, rows = [], []
    for i, ident in enumerate(idents):
        vrng = np.random.default_rng(np.random.SeedSequence([seed, 11, i]))
        # swaps pair people of the same race and gender when the corpus has them
        others = ([j for j in range(n_ids) if j != i and idents[j].race == ident.race
                   and idents[j].gender == ident.gender]
                  or [j for j in range(n_ids) if j != i and idents[j].gender == ident.gender]
                  or [j for j in range(n_ids) if j != i])
        donor = int(vrng.choice(others))
        numbers = sorted(vrng.choice(np.arange(1, 13), size=2, replace=False))  # names repeat
        media = [_media_choice(vrng) for _ in range(2)]
        folder = f"{ident.race}/{ident.gender}/{ident.name}"
        for method, cat in FAKEAVCELEB_METHODS.items():
            for k in range(2 if method == "real" else 1):
                num = numbers[k]
                fps, sr, ch, dur = media[k]
                dname = idents[donor].name
                fname = {"real": f"{num:05d}.mp4", "rtvc": f"{num:05d}_fake.mp4",
                         "wav2lip": f"{num:05d}_wavtolip.mp4"}.get(
                    method, f"{num:05d}_{dname}_{method.replace('wav2lip', 'wavtolip')}.mp4")
                rel = f"{TYPES[cat]}/{folder}/{fname}"
                fake_seed = hash_seed(method, i, k)
                specs.append(VideoSpec(
                    rel=f"fakeavceleb/{rel}", method=method, ident=i, seed=i * 10 + k,
                    fake_seed=fake_seed, corpus_seed=seed, width=frame, height=frame, fps=fps,
                    sr=sr, channels=ch, duration=dur,
                    donor=donor if method in ("faceswap", "fsgan", "faceswap-wav2lip",
                                              "fsgan-wav2lip") else None,
                    shortcut=shortcut and method != "real", ident_name=ident.name))
                t1 = dname if specs[-1].donor is not None else "-"
                rows.append([ident.name, t1, "-", method, cat, TYPES[cat], ident.race,
                             ident.gender, fname, f"FakeAVCeleb/{TYPES[cat]}/{folder}"])
                if method == "fsgan-wav2lip" and i % 12 == 1:
                    # quirk of the real CSV: the same physical file listed under a second method
                    rows.append(rows[-1][:3] + ["faceswap-wav2lip"] + rows[-1][4:])
    return specs, rows


def hash_seed(*parts: Any) -> int:
    """A stable small integer from strings/ints (Python's hash() is salted per process)."""
    h = 0
    for p in parts:
        for ch in str(p) + "|":
            h = (h * 131 + ord(ch)) % (2**31 - 1)
    return h


def plan_lavdf(seed: int, n_orig: int, frame: int) -> tuple[list[VideoSpec], list[dict]]:
    """LAV-DF layout: each original has a real video and two partial fakes in the same split."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20]))
    splits = (["train", "dev", "test"] * n_orig)[:n_orig]
    numbers = rng.permutation(np.arange(1, 3 * n_orig + 1))
    kinds = ("lavdf-audio", "lavdf-visual", "lavdf-audiovisual")
    specs, meta, k = [], [], 0
    for o in range(n_orig):
        ident = 10_000 + o
        dur = float(np.round(rng.uniform(2.0, 3.0), 2))
        split = splits[o]
        orig_file = f"{split}/{numbers[k]:06d}.mp4"
        for j in range(3):
            method = "real" if j == 0 else kinds[(o + j - 1) % 3]
            file = f"{split}/{numbers[k]:06d}.mp4"
            k += 1
            periods: list[list[float]] = []
            if method != "real":
                for _ in range(int(rng.integers(1, 3))):
                    length = float(rng.uniform(0.3, 0.7))
                    s = float(np.round(rng.uniform(0.1, dur - length - 0.05), 3))
                    periods.append([s, float(np.round(s + length, 3))])
                periods = _merge(periods)
            spec = VideoSpec(rel=f"lavdf/{file}", method=method, ident=ident, seed=ident * 10,
                             fake_seed=hash_seed("lavdf", o, j), corpus_seed=seed, width=frame,
                             height=frame, fps=Fraction(25), sr=16000, channels=1, duration=dur,
                             periods=periods, crf=20)
            specs.append(spec)
            meta.append({
                "file": file, "split": split, "n_fakes": len(periods), "fake_periods": periods,
                "duration": dur, "original": None if method == "real" else orig_file,
                "modify_video": method in ("lavdf-visual", "lavdf-audiovisual"),
                "modify_audio": method in ("lavdf-audio", "lavdf-audiovisual"),
                "video_frames": spec.n_frames, "audio_channels": 1, "audio_frames": spec.n_samples,
            })
    return specs, meta


def _merge(periods: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for s, e in sorted(periods):
        if out and s <= out[-1][1] + 0.05:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def plan_dftimit(seed: int, n_subjects: int, frame: int) -> list[VideoSpec]:
    """DeepfakeTIMIT + VidTIMIT: per subject 3 sentences: 2 HQ fakes, 1 LQ fake, 3 reals."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 30]))
    W, H = int(frame * 1.25) // 2 * 2, int(frame * 0.9375) // 2 * 2   # 4:3, like 512x384
    letters = "abcdefghijklmnoprstw"
    subj_idx = [20_000 + s for s in range(n_subjects)]
    names = []
    for s, idx in enumerate(subj_idx):
        g = "f" if make_identity(idx, seed).gender == "women" else "m"
        names.append(g + "".join(rng.choice(list(letters), 3)) + str(s % 10))
    specs = []
    for s, idx in enumerate(subj_idx):
        donor = subj_idx[(s + 1) % n_subjects] if n_subjects > 1 else 20_999
        dname = names[(s + 1) % n_subjects] if n_subjects > 1 else "mdon0"
        sentences = ["sa1", "sa2", f"si{int(rng.integers(500, 2300))}"]
        for j, sent in enumerate(sentences):
            dur = float(np.round(rng.uniform(2.0, 3.0), 2))
            common = dict(ident=idx, seed=idx * 10 + j, corpus_seed=seed, width=W, height=H,
                          fps=Fraction(25), sr=16000, channels=1, duration=dur)
            specs.append(VideoSpec(rel=f"dftimit/vidtimit/{names[s]}/video/{sent}", method="real",
                                   fake_seed=0, container="jpg",
                                   wav_rel=f"dftimit/vidtimit/{names[s]}/audio/{sent}.wav",
                                   **common))
            quality = "higher_quality" if j < 2 else "lower_quality"
            method = "dftimit-hq" if j < 2 else "dftimit-lq"
            folder = f"dftimit/{quality}/{names[s]}"
            specs.append(VideoSpec(rel=f"{folder}/{sent}-video-{dname}.avi", method=method,
                                   fake_seed=hash_seed("dftimit", s, j), donor=donor,
                                   container="avi", wav_rel=f"{folder}/{sent}.wav", **common))
    return specs


def plan_dfdm(seed: int, n_reals: int, per_model: int, frame: int) -> list[VideoSpec]:
    """DFDM (crf 23) fakes of 5 swap models + Celeb-DF-style reals."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 40]))
    W, H = int(frame * 1.25) // 2 * 2, frame
    idx = [30_000 + r for r in range(max(2, n_reals))]
    celeb = [int(v) for v in rng.choice(np.arange(0, 62), size=len(idx), replace=False)]
    scenes = [int(v) for v in rng.integers(0, 10, len(idx))]
    specs = []
    media = [_media_choice(rng) for _ in idx]
    for r in range(n_reals):
        fps, sr, ch, dur = media[r]
        specs.append(VideoSpec(rel=f"dfdm/Celeb-real/id{celeb[r]}_{scenes[r]:04d}.mp4",
                               method="real", ident=idx[r], seed=idx[r] * 10, fake_seed=0,
                               corpus_seed=seed, width=W, height=H, fps=Fraction(25), sr=sr,
                               channels=ch, duration=dur, crf=23))
    for m, (tag, style) in enumerate(DFDM_MODELS.items()):
        for k in range(per_model):
            r, cycle = (k + m) % n_reals, k // n_reals   # cycle > 0: another scene
            d = (r + 1 + cycle) % len(idx)
            d = d if d != r else (r + 1) % len(idx)
            fps, sr, ch, dur = media[r]
            specs.append(VideoSpec(
                rel=f"dfdm/DFDM_crf23/id{celeb[r]}_id{celeb[d]}_{scenes[r] + 10 * cycle:04d}"
                    f"_{tag}.mp4",
                method=style, ident=idx[r], seed=idx[r] * 10 + cycle,
                fake_seed=hash_seed("dfdm", tag, k), corpus_seed=seed, width=W, height=H,
                fps=Fraction(25), sr=sr, channels=ch, duration=dur, donor=idx[d], crf=23))
    return specs


# ============================================================================================
# The corpus
# ============================================================================================
def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def make_corpus(out_dir: str | Path, size: str = "tiny", seed: int = 0,
                shortcut: str | None = None, workers: int = 1, progress: bool = True,
                n_identities: int | None = None,
                layouts: Sequence[str] = LAYOUTS) -> dict[str, Path]:
    """Render the synthetic corpus into ``out_dir`` (one folder per dataset layout).

    Args:
        out_dir: where ``fakeavceleb/``, ``lavdf/``, ``dftimit/``, ``dfdm/`` and the marker
            ``.complete.json`` go.
        size: ``"tiny"`` (24 identities, 72 px, ~270 files, about a minute on 2 cores) or
            ``"standard"`` (250 identities, 224 px, ~2,600 files).
        seed: corpus seed; the same arguments always give the same files.
        shortcut: ``None`` or ``"leading-silence"`` (fake FakeAVCeleb audio starts silent).
        workers: processes rendering videos in parallel (results do not depend on it).
        progress: show a tqdm progress bar.
        n_identities: override the number of training identities (held-out sets scale along);
            for tests and quick experiments.
        layouts: which dataset layouts to write (default all four).

    Returns:
        ``{layout: dataset root}`` for the requested layouts.

    Already-written files are kept (a crashed run resumes). A complete corpus made with the same
    arguments returns at once; one made with other arguments raises ``ValueError``.
    """
    from tqdm.auto import tqdm

    from amdd_kit import __version__

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    bad = set(layouts) - set(LAYOUTS)
    if bad or not layouts:
        raise ValueError(f"layouts must be a non-empty subset of {LAYOUTS}, got {list(layouts)}")
    if n_identities is not None and n_identities < 2:
        raise ValueError("n_identities must be at least 2 (face swaps need a donor)")
    out = Path(out_dir)
    counts = _counts(size, n_identities)
    args = {"size": size, "seed": int(seed), "shortcut": shortcut,
            "n_identities": counts["identities"], "layouts": sorted(layouts)}
    roots = {name: out / name for name in layouts}
    marker, partial = out / ".complete.json", out / ".partial.json"
    for m in (marker, partial):
        if m.exists():
            old = json.loads(m.read_text())
            if {k: old.get(k) for k in args} != args:
                raise ValueError(f"{out} holds a corpus made with {({k: old.get(k) for k in args})}"
                                 f"; asked for {args}. Use another folder or delete it.")
            if m is marker:
                return roots
    _write_text(partial, json.dumps(args, indent=1))

    frame = counts["frame"]
    specs: list[VideoSpec] = []
    extra: dict[str, Any] = {}
    if "fakeavceleb" in layouts:
        s, rows = plan_fakeavceleb(seed, counts["identities"], frame,
                                   shortcut == "leading-silence")
        specs += s
        extra["rows"] = rows
    if "lavdf" in layouts:
        s, meta = plan_lavdf(seed, counts["lavdf_originals"], frame)
        specs += s
        extra["lavdf"] = meta
    if "dftimit" in layouts:
        specs += plan_dftimit(seed, counts["dftimit_subjects"], frame)
    if "dfdm" in layouts:
        specs += plan_dfdm(seed, counts["dfdm_reals"], counts["dfdm_per_model"], frame)

    failures: list[tuple[str, str]] = []
    bar = tqdm(total=len(specs), desc="synthetic corpus", unit="video", disable=not progress)
    if workers > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_make_video_safe, s, str(out)) for s in specs]
            for f in as_completed(futs):
                rel, err = f.result()
                if err:
                    failures.append((rel, err))
                bar.update()
    else:
        for s in specs:
            rel, err = _make_video_safe(s, str(out))
            if err:
                failures.append((rel, err))
            bar.update()
    bar.close()
    if failures:
        for rel, err in failures:
            log.error("synthetic: %s failed: %s", rel, err)
        raise RuntimeError(f"{len(failures)} of {len(specs)} videos failed (first: {failures[0]});"
                           " the others are written, re-run make_corpus to resume")

    if "rows" in extra:
        header = "source,target1,target2,method,category,type,race,gender,path,\n"
        body = "".join(",".join(r) + "\n" for r in extra["rows"])
        _write_text(roots["fakeavceleb"] / "meta_data.csv", header + body)
    if "lavdf" in extra:
        _write_text(roots["lavdf"] / "metadata.json", json.dumps(extra["lavdf"], indent=1))
    n_by = {name: sum(s.rel.startswith(name + "/") for s in specs) for name in layouts}
    _write_text(marker, json.dumps({**args, "counts": n_by, "kit_version": __version__},
                                   indent=1))
    partial.unlink(missing_ok=True)
    return roots

"""Generators: how each method forges a video (face swaps, lip sync, cloned voices, partial
edits), and :func:`render_video`, which renders one :class:`VideoSpec` with its generator.

The traces each generator leaves are listed in :data:`~.methods.TRACE_DESCRIPTIONS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

import cv2
import numpy as np

from .identities import make_identity
from .speech import clone_voice, plan_speech, synth_speech, tts_voice
from .video import (Geometry, _col, background, face_mask, frame_geometry, make_motion,
                    mouth_box, mouth_track, render_frame)


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


@dataclass
class VideoSpec:
    """Everything needed to render and write one video (picklable, for the process pool)."""

    rel: str                        # output path relative to the corpus folder
    method: str                     # generator (see TRACE_DESCRIPTIONS)
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

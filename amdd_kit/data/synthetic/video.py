"""Video: head motion, blinks, the face geometry of each frame, and frame rendering.

The mouth opening follows the speech envelope with a natural lag (:func:`mouth_track`): the
physical audio-visual coupling that forgeries break.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .identities import Identity
from .speech import SpeechPlan, speech_envelope


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

"""Face detection, tracking and cropping.

The detector is one small swappable function, :func:`haar_face` (OpenCV's frontal-face Haar
cascade, shipped in the ``opencv-python-headless<5`` wheel). Haar misses faces often (profile,
blur, small faces), so :func:`detect_faces` runs it only on every ``every``-th frame, smooths the
boxes over time and lets frames without a detection borrow (interpolate) the boxes of their
detected neighbours. To use a stronger detector (YuNet, RetinaFace), pass any function with the
signature of :func:`haar_face` as ``detector=``.

A second detector ships with the kit's optional ``faces`` extra: :func:`dlib_face`, dlib's HOG +
linear SVM frontal-face detector (the one DeepfakeBench's preprocessing uses), whose weights are
compiled into the ``dlib-bin`` wheel (nothing is downloaded at run time). It finds faces that the
2001 cascade misses in real footage (a photograph under poor light, a mirrored pose); on the
synthetic corpus both find nearly every face and Haar is faster, so Haar stays the default.
``DataConfig.face_detector`` picks one by name (:data:`FACE_DETECTORS`, :func:`face_detector`);
``benchmarks/bench_faces.py`` measures both.

With ``track=True`` (``DataConfig.face_search = "track"``, the paper config), every detection
after the first searches only near the previous box (:func:`haar_face_near`: a window of twice
the face, shrunk so the face is about :data:`TRACK_FACE_SIDE` px, faces within +-35% of the
previous size), and falls back to the full-frame search when it finds nothing there. That cuts
the detector's cost per frame about tenfold at 224 px.

Boxes are ``(cx, cy, side)``: centre and side of a square, in pixels of the input frame.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

#: A detector takes one RGB frame uint8 [H, W, 3] and returns (x, y, w, h) of the face or None.
Detector = Callable[[np.ndarray], "tuple[int, int, int, int] | None"]

_DETECT_SIDE = 128  # frames are shrunk to at most this short side before detection (speed)
TRACK_FACE_SIDE = 32  # tracking: the search window is shrunk so the face is about this many px
HAAR_MIN_WEIGHT = 1.0  # cascade confidence below which a hit is ignored (real faces score 3-7)


@functools.lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    c = cv2.CascadeClassifier(path)
    if c.empty():
        raise RuntimeError(f"cannot load the Haar cascade {path} (opencv-python-headless<5 "
                           "ships it; OpenCV 5 dropped it)")
    return c


def haar_face(image_rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """Largest confident frontal face in one RGB frame ``[H, W, 3]`` as ``(x, y, w, h)``, or None.

    Hits whose cascade confidence (``detectMultiScale3`` level weight) is below
    :data:`HAAR_MIN_WEIGHT` are dropped first: Haar's false positives are usually weak ones.
    When nothing is found, the detector tries once more on the histogram-equalised frame:
    Haar misses dark, low-contrast faces far more often (a known bias of the cascade; on the
    synthetic corpus the hit rate on a dark face went from 27% to 98%).
    """
    h, w = image_rgb.shape[:2]
    scale = min(1.0, _DETECT_SIDE / min(h, w))
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    min_side = max(16, min(gray.shape) // 6)  # smaller faces make useless, blurry crops
    found = None
    for img in (gray, None):  # second try: histogram-equalised (dark, low-contrast faces)
        img = cv2.equalizeHist(gray) if img is None else img
        boxes, _, weights = _cascade().detectMultiScale3(
            img, scaleFactor=1.15, minNeighbors=4, minSize=(min_side, min_side),
            outputRejectLevels=True)
        # weak hits (e.g. a round collar, weight < 1) would win "largest" over the real face
        found = [b for b, wt in zip(boxes, np.ravel(weights)) if wt >= HAAR_MIN_WEIGHT]
        if found:
            break
    if not found:
        return None
    x, y, bw, bh = max(found, key=lambda b: b[2] * b[3])
    return tuple(int(round(v / scale)) for v in (x, y, bw, bh))


def _confident_largest(img: np.ndarray, min_side: int, max_side: int | None = None):
    """Largest cascade hit with weight >= HAAR_MIN_WEIGHT on ``img`` then on its equalised copy."""
    for im in (img, None):
        im = cv2.equalizeHist(img) if im is None else im
        kw = {"maxSize": (max_side, max_side)} if max_side else {}
        boxes, _, weights = _cascade().detectMultiScale3(
            im, scaleFactor=1.1 if max_side else 1.15, minNeighbors=4,
            minSize=(min_side, min_side), outputRejectLevels=True, **kw)
        found = [b for b, wt in zip(boxes, np.ravel(weights)) if wt >= HAAR_MIN_WEIGHT]
        if found:
            return max(found, key=lambda b: b[2] * b[3])
    return None


def haar_face_near(image_rgb: np.ndarray, box: np.ndarray | tuple[float, float, float],
                   rel: float = 0.35) -> tuple[int, int, int, int] | None:
    """:func:`haar_face` restricted to the neighbourhood of a previous box ``(cx, cy, side)``.

    Searches a window of ``2 * side`` around the box centre, shrunk so that the face is about
    :data:`TRACK_FACE_SIDE` px, for faces of ``(1 +- rel) * side``. Returns ``(x, y, w, h)`` in
    frame pixels, or None (the caller then searches the whole frame).
    """
    h, w = image_rgb.shape[:2]
    cx, cy, side = (float(v) for v in box)
    x0, y0 = max(0, int(cx - side)), max(0, int(cy - side))
    x1, y1 = min(w, int(np.ceil(cx + side))), min(h, int(np.ceil(cy + side)))
    scale = min(1.0, TRACK_FACE_SIDE / max(side, 1.0))
    if min(x1 - x0, y1 - y0) * scale < 24:
        return None
    gray = cv2.cvtColor(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                          interpolation=cv2.INTER_AREA)
    s = side * scale
    best = _confident_largest(gray, max(20, int(s * (1 - rel))), int(np.ceil(s * (1 + rel))) + 1)
    if best is None:
        return None
    bx, by, bw, bh = best
    return (int(round(x0 + bx / scale)), int(round(y0 + by / scale)), int(round(bw / scale)),
            int(round(bh / scale)))


#: dlib's detection score below which a hit is ignored (real faces score about 0.8-2.5; weak
#: hits on a patterned background 0-0.4, see benchmarks/bench_faces.py)
DLIB_MIN_SCORE = 0.5
DLIB_INSTALL = ("the 'dlib' face detector needs the dlib-bin package (its weights are inside the "
                "wheel): pip install -e '.[faces]' in the kit's folder, or pip install dlib-bin")


@functools.lru_cache(maxsize=1)
def _dlib_detector():
    try:
        import dlib  # lazy: an optional extra
    except ImportError:
        raise ImportError(DLIB_INSTALL) from None
    return dlib.get_frontal_face_detector()


def dlib_face(image_rgb: np.ndarray, upsample: int = 1) -> tuple[int, int, int, int] | None:
    """Largest confident frontal face in one RGB frame ``[H, W, 3]`` as ``(x, y, w, h)``, or None.

    dlib's HOG detector (``get_frontal_face_detector``) on the frame enlarged ``upsample`` times
    (its smallest face is 80 px, about 40 px at ``upsample=1``); hits scoring below
    :data:`DLIB_MIN_SCORE` are dropped. Needs the ``faces`` extra (``dlib-bin``).
    """
    boxes, scores, _ = _dlib_detector().run(np.ascontiguousarray(image_rgb), upsample, 0.0)
    h, w = image_rgb.shape[:2]
    found = [(max(0, r.left()), max(0, r.top()), min(w, r.right()), min(h, r.bottom()))
             for r, s in zip(boxes, scores) if s >= DLIB_MIN_SCORE]
    found = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in found if x1 > x0 and y1 > y0]
    if not found:
        return None
    return max(found, key=lambda b: b[2] * b[3])


#: ``DataConfig.face_detector`` name -> per-frame detector
FACE_DETECTORS: dict[str, Detector] = {"haar": haar_face, "dlib": dlib_face}


def face_detector(name: str) -> Detector:
    """The per-frame detector called ``name`` (:data:`FACE_DETECTORS`), checked to be usable:
    an unknown name is a ``ValueError``, a detector whose package is missing an ``ImportError``
    that says how to install it (raised here, once, not in every preprocessing worker)."""
    if name not in FACE_DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose from {sorted(FACE_DETECTORS)}")
    if name == "dlib":
        _dlib_detector()
    return FACE_DETECTORS[name]


@dataclass
class FaceTrack:
    """Per-frame face boxes of one frame sequence.

    Attributes:
        boxes: float32 ``[N, 3]`` ``(cx, cy, side)`` for every frame (filled and smoothed).
        sampled: indices of the frames the detector ran on.
        found: bool ``[len(sampled)]``, whether a face was found there.
    """

    boxes: np.ndarray
    sampled: np.ndarray
    found: np.ndarray

    @property
    def face_fraction(self) -> float:
        """Fraction of the sampled frames with a detected face (0..1)."""
        return float(self.found.mean()) if len(self.found) else 0.0


def detect_faces(frames_rgb: np.ndarray | list[np.ndarray], every: int = 5,
                 detector: Detector = haar_face, track: bool = False) -> FaceTrack:
    """Track the (largest) face through a frame sequence.

    Args:
        frames_rgb: uint8 ``[N, H, W, 3]`` (or a list of such frames), in time order.
        every: run the detector on every ``every``-th frame (and always on the last one).
        detector: the per-frame detector (default :func:`haar_face`).
        track: search near the previous detection first (:func:`haar_face_near`; only with the
            default detector), the whole frame only when that finds nothing.

    Returns:
        A :class:`FaceTrack`. Detected boxes are smoothed with a 3-tap moving average over the
        detections, then linearly interpolated to every frame; frames before the first or after
        the last detection take the nearest detected box. With no detection at all the box is
        the centred square of the frame (and ``face_fraction`` is 0: the caller decides to skip).
    """
    n = len(frames_rgb)
    if n == 0:
        raise ValueError("detect_faces needs at least one frame")
    h, w = frames_rgb[0].shape[:2]
    sampled = np.unique(np.r_[np.arange(0, n, max(1, int(every))), n - 1])
    if track and detector is haar_face:
        dets, prev = [], None
        for i in sampled:
            d = haar_face_near(frames_rgb[i], prev) if prev is not None else None
            d = d if d is not None else detector(frames_rgb[i])
            if d is not None:
                prev = (d[0] + d[2] / 2, d[1] + d[3] / 2, max(d[2], d[3]))
            dets.append(d)
    else:
        dets = [detector(frames_rgb[i]) for i in sampled]
    found = np.array([d is not None for d in dets], dtype=bool)
    if not found.any():
        box = np.array([w / 2, h / 2, min(h, w)], dtype=np.float32)
        return FaceTrack(np.tile(box, (n, 1)), sampled, found)
    t = sampled[found].astype(np.float64)
    b = np.array([(x + bw / 2, y + bh / 2, max(bw, bh)) for x, y, bw, bh in
                  (d for d in dets if d is not None)], dtype=np.float64)
    if len(b) >= 3:  # 3-tap moving average, ends kept
        b[1:-1] = (b[:-2] + b[1:-1] + b[2:]) / 3
    frames_t = np.arange(n, dtype=np.float64)
    boxes = np.stack([np.interp(frames_t, t, b[:, j]) for j in range(3)], axis=1)
    return FaceTrack(boxes.astype(np.float32), sampled, found)


CROP_MODES: tuple[str, ...] = ("native", "resize")


def crop_scale(boxes: np.ndarray, size: int, margin: float, mode: str = "native") -> float:
    """The resampling factor the crops of one video get (1.0 = pixels copied, no resampling).

    ``mode="native"``: when the median detected face side fits in ``size`` source pixels, the
    crop is a ``size x size`` window of the source frame around the face: no resampling, so
    pixel-level forensic traces (a 2-px up-sampling checkerboard, a sharp blend seam) reach the
    model exactly as the codec left them; the margin is whatever room the window leaves
    (at least ``margin`` when the face is small enough). When the face is larger than ``size``,
    the margin-enlarged box is shrunk to ``size`` (factor < 1: area averaging, which erases
    detail finer than 1/factor pixels; ``amdd-kit preprocess`` logs it).
    ``mode="resize"``: always resize the margin-enlarged box to ``size`` (the classic pipeline;
    factor = size / enlarged side, < 1 shrinks, > 1 enlarges).
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    side = float(np.median(np.asarray(boxes, dtype=np.float64)[:, 2]))
    enlarged = max(1.0, side * (1 + 2 * margin))
    if mode == "native" and side <= size:
        return 1.0
    return size / enlarged


def crop_face(frame_rgb: np.ndarray, box: np.ndarray, size: int, margin: float,
              scale: float | None = None) -> np.ndarray:
    """Square face crop ``uint8 [size, size, 3]`` around ``box = (cx, cy, side)``.

    ``scale`` (see :func:`crop_scale`): 1.0 copies a ``size x size`` window of source pixels
    centred on the face (integer offsets, no interpolation); any other value (default: the
    box enlarged by ``margin`` on each side) takes a square of ``size / scale`` source pixels
    and resizes it (INTER_AREA when shrinking, INTER_LINEAR when enlarging). Parts of the square
    outside the frame are padded with black.
    """
    h, w = frame_rgb.shape[:2]
    cx, cy, side = (float(v) for v in box)
    if scale is None:
        scale = size / max(1.0, side * (1 + 2 * margin))
    if scale == 1.0:
        x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
        x1, y1 = x0 + size, y0 + size
    else:
        half = max(1.0, size / scale / 2)
        x0, y0 = int(round(cx - half)), int(round(cy - half))
        x1, y1 = int(round(cx + half)), int(round(cy + half))
    canvas = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame_rgb[sy0:sy1, sx0:sx1]
    if canvas.shape[:2] == (size, size):
        return canvas
    interp = cv2.INTER_AREA if canvas.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp)


def crop_faces(frames_rgb: np.ndarray | list[np.ndarray], boxes: np.ndarray, size: int,
               margin: float, mode: str = "native", channels_first: bool = False) -> np.ndarray:
    """:func:`crop_face` over a sequence, one scale for all frames (:func:`crop_scale` of the
    whole track, so the face keeps its pixel size over time).

    Returns uint8 ``[N, size, size, 3]``, or ``[N, 3, size, size]`` with ``channels_first``
    (the clip store's layout): each crop is split plane by plane straight into the output
    (``cv2.split`` with destination views), without the strided HWC -> CHW copy of a
    transpose, which cost about 3 ms of a paper-config video's preprocessing. Same pixels.
    """
    scale = crop_scale(boxes, size, margin, mode)
    if not channels_first:
        return np.stack([crop_face(f, b, size, margin, scale) for f, b in zip(frames_rgb, boxes)])
    out = np.empty((len(boxes), 3, size, size), dtype=np.uint8)
    for i, (f, b) in enumerate(zip(frames_rgb, boxes)):
        cv2.split(crop_face(f, b, size, margin, scale), [out[i, 0], out[i, 1], out[i, 2]])
    return out

"""Forensic-trace measurements: look at what each generator leaves behind, without a model.

Functions over arrays only; this module opens no file. The arrays are the clip store's
(``frames`` uint8 ``[T, 3, H, W]`` face crops, ``mel`` ``[n_mels, S]`` log-mel) or a file's own,
read by the data layer (:func:`amdd_kit.data.video.first_frames`: uint8 ``[T, H, W, 3]`` at
native size; :func:`amdd_kit.data.audio.native_audio`: waveform ``[S]`` float32 and its rate).
Used by notebook 02 (forensic traces) and by the shortcut audit (notebook 06).

* :func:`mean_log_mel_by_method` -- average spectrum per generator (band limits, smearing);
* :func:`high_band_energy` -- how much energy a clip has above a cut-off (voice cloning low-passes);
* :func:`frame_spectrum`, :func:`checkerboard_score` -- 2-D image spectrum and the energy at the
  2-pixel (Nyquist) frequency, where up-sampling layers leave a checkerboard;
  :func:`centre_crop`, :func:`crop_comparison` -- native frames and face crops to measure it on;
* :func:`mouth_envelope_correlation` -- does the mouth move with the speech? (lip-sync);
* :func:`leading_silence_seconds` -- the leading-silence shortcut of FakeAVCeleb (the table over
  a corpus and its one-threshold detector are in :mod:`amdd_kit.experiments.shortcut`);
* :func:`store_traces`, :func:`trace_separability` -- every trace on a clip store, and its AUC.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .data.audio import leading_silence

# ITU-R BT.601 luma weights (what the video codec stores as brightness)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# -- audio spectra ---------------------------------------------------------------------------
def mean_log_mel_by_method(mels: np.ndarray, methods: Sequence[str]) -> pd.DataFrame:
    """Average log-mel spectrum per method.

    Args:
        mels: ``[N, n_mels, S]`` log-mel clips (any float dtype; a memmap is fine).
        methods: ``[N]`` method name of each clip.

    Returns:
        DataFrame, one row per method (index ``method``, in order of first appearance), one
        column per mel bin (``0 .. n_mels-1``): the log-mel averaged over clips and time.
    """
    mels = np.asarray(mels)
    methods = np.asarray(methods)
    if mels.ndim != 3 or len(mels) != len(methods):
        raise ValueError(f"mels must be [N, n_mels, S] with N = len(methods); got {mels.shape} "
                         f"and {len(methods)} methods")
    per_clip = pd.DataFrame(mels.astype(np.float32).mean(axis=2))   # [N, n_mels]
    return per_clip.groupby(pd.Index(methods, name="method"), sort=False).mean()


def mel_bin_frequencies(n_mels: int, f_min: float = 0.0, f_max: float = 8000.0) -> np.ndarray:
    """Centre frequency (Hz) of each mel bin (librosa's Slaney mel scale)."""
    import librosa

    return librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max)[1:-1]


def high_band_energy(mels: np.ndarray, cutoff_hz: float = 5000.0, f_min: float = 0.0,
                     f_max: float = 8000.0) -> np.ndarray:
    """Per clip: mean log-mel above ``cutoff_hz`` minus the mean over all bins.

    Args:
        mels: ``[N, n_mels, S]`` (or one clip ``[n_mels, S]``) log-mel.
        cutoff_hz, f_min, f_max: the band edge and the mel range the store was built with.

    Returns:
        ``[N]`` (or a float): in the log units of the mel (dB or nats). Strongly negative when the
        audio was low-passed below the cut-off (voice cloning, telephone bands).
    """
    m = np.asarray(mels, dtype=np.float32)
    single = m.ndim == 2
    if single:
        m = m[None]
    freqs = mel_bin_frequencies(m.shape[1], f_min, f_max)
    hi = freqs >= cutoff_hz
    if not hi.any():
        raise ValueError(f"no mel bin above {cutoff_hz} Hz (f_max = {f_max})")
    spec = m.mean(axis=2)
    out = spec[:, hi].mean(axis=1) - spec.mean(axis=1)
    return float(out[0]) if single else out


# -- image spectra ---------------------------------------------------------------------------
def _grey(frames: np.ndarray) -> np.ndarray:
    """``[T, 3, H, W]`` or ``[3, H, W]`` (or already grey ``[T, H, W]``) -> float32 ``[T, H, W]``."""
    f = np.asarray(frames)
    if f.ndim == 3 and f.shape[0] == 3:
        f = f[None]
    if f.ndim == 4:
        if f.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, H, W]; got {f.shape}")
        return np.tensordot(f.astype(np.float32), _LUMA, axes=([1], [0]))
    if f.ndim == 3:
        return f.astype(np.float32)
    raise ValueError(f"frames must be [T, 3, H, W]; got {f.shape}")


def _region(frames: np.ndarray, top: float, bottom: float, left: float, right: float) -> np.ndarray:
    """``frames[..., top:bottom, left:right]`` with the box given as fractions of H and W."""
    h, w = frames.shape[-2:]
    return frames[..., int(top * h):max(int(top * h) + 1, int(bottom * h)),
                  int(left * w):max(int(left * w) + 1, int(right * w))]


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """Mean 2-D power spectrum of the (grey, windowed, mean-removed) frames, NOT shifted.

    Returns float64 ``[H, W]``; index ``[H//2, W//2]`` is the 2-pixel (Nyquist) frequency in both
    directions, ``[0, 0]`` the DC.
    """
    g = _grey(frames)
    g = g - g.mean(axis=(1, 2), keepdims=True)
    h, w = g.shape[1:]
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    return (np.abs(np.fft.fft2(g * win)) ** 2).mean(axis=0)


def frame_spectrum(frames: np.ndarray) -> np.ndarray:
    """Log-magnitude spectrum for display: ``log10(1 + power)``, fftshift-ed (DC in the centre).

    Args:
        frames: uint8 ``[T, 3, H, W]`` (one clip) or ``[3, H, W]``.

    Returns:
        float32 ``[H, W]``: the 2-px frequencies are on the border (row 0 and column 0).
    """
    return np.fft.fftshift(np.log10(1.0 + power_spectrum(frames))).astype(np.float32)


def checkerboard_score(frames: np.ndarray, peak_radius: int = 1, ring: tuple[int, int] = (3, 6)
                       ) -> float:
    """Energy at the 2-pixel (Nyquist) frequencies relative to their neighbourhood, in dB.

    An up-sampling layer (transposed convolution, stride 2) leaves a pattern that alternates
    every pixel: a spike at the Nyquist frequency ``(H/2, W/2)`` (diagonal checkerboard) or
    ``(H/2, 0)`` / ``(0, W/2)`` (stripes). Natural images fall off smoothly there (score near
    0 dB); a checkerboard gives a clearly positive score.

    Args:
        frames: uint8 ``[T, 3, H, W]``.
        peak_radius: half-size of the block counted as the peak (the Hann window spreads it).
        ring: Chebyshev distances (in frequency bins) of the neighbours it is compared with.

    Returns:
        ``10 * log10(mean peak power / median neighbour power)``, the largest of the three
        Nyquist points.
    """
    p = power_spectrum(frames)
    h, w = p.shape
    dy, dx = np.meshgrid(np.arange(-ring[1], ring[1] + 1), np.arange(-ring[1], ring[1] + 1),
                         indexing="ij")
    cheb = np.maximum(np.abs(dy), np.abs(dx))
    best = -np.inf
    for cy, cx in ((h // 2, w // 2), (h // 2, 0), (0, w // 2)):
        vals = p[(cy + dy) % h, (cx + dx) % w]
        peak = vals[cheb <= peak_radius].mean()
        near = np.median(vals[(cheb >= ring[0]) & (cheb <= ring[1])])
        best = max(best, 10 * np.log10((peak + 1e-12) / (near + 1e-12)))
    return float(best)


def _reader_frames(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as an array, checked to be the reader's ``[T, H, W, 3]`` layout."""
    f = np.asarray(rgb)
    if f.ndim != 4 or f.shape[3] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] (data.video.first_frames); got {f.shape}")
    return f


def centre_crop(rgb: np.ndarray, crop: float = 1.0) -> np.ndarray:
    """The central ``crop`` fraction (of height and width) of video frames, in the store's layout.

    Args:
        rgb: uint8 ``[T, H, W, 3]`` frames as the reader returns them, e.g. a video's first frames
            at NATIVE resolution (:func:`amdd_kit.data.video.first_frames`). Resizing (as
            preprocessing does) low-passes the frames and hides pixel-level traces such as the
            2-px checkerboard; measure those on native frames.
        crop: 0.5 keeps the centre quarter; 1.0 keeps everything.

    Returns:
        uint8 ``[T, 3, h, w]`` (contiguous), what :func:`checkerboard_score` takes.
    """
    f = _reader_frames(rgb)
    h, w = f.shape[1:3]
    ch, cw = max(1, int(round(h * crop))), max(1, int(round(w * crop)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(f[:, y0:y0 + ch, x0:x0 + cw].transpose(0, 3, 1, 2))


def crop_comparison(rgb: np.ndarray, cfg) -> dict[str, np.ndarray]:
    """The face crops of the same frames under each crop mode (``data.faces.CROP_MODES``), to
    show what the crop does to pixel-level traces: ``native`` copies source pixels, ``resize``
    interpolates the margin-enlarged box to ``cfg.image_size``.

    ``rgb`` uint8 ``[T, H, W, 3]`` native frames (:func:`amdd_kit.data.video.first_frames`),
    ``cfg`` a ``DataConfig`` -> ``{"native": uint8 [T, 3, s, s], "resize": ...}``,
    ``s = cfg.image_size``.
    """
    from .data.faces import CROP_MODES, crop_faces, detect_faces

    rgb = np.ascontiguousarray(_reader_frames(rgb))
    track = detect_faces(rgb, every=cfg.detect_every)
    return {mode: crop_faces(rgb, track.boxes, cfg.image_size, cfg.face_margin, mode)
            .transpose(0, 3, 1, 2) for mode in CROP_MODES}


# -- lip sync --------------------------------------------------------------------------------
def mouth_opening(frames: np.ndarray, box: tuple[float, float, float, float] = (0.5, 0.75, 0.35, 0.65)
                  ) -> np.ndarray:
    """Mouth-opening proxy per frame: darkness of the lower-centre of the face crop.

    Args:
        frames: uint8 ``[T, 3, H, W]`` face crops.
        box: ``(top, bottom, left, right)`` of the mouth region as fractions of H and W; the
            default fits the store's crops (Haar box enlarged by ``face_margin`` = 0.25).

    Returns:
        float32 ``[T]``: ``255 - mean luma`` of the region (an open mouth is dark inside).
    """
    g = _grey(frames)
    return (255.0 - _region(g, *box).mean(axis=(1, 2))).astype(np.float32)


def speech_envelope_from_mel(mel: np.ndarray, n_frames: int) -> np.ndarray:
    """Speech energy per video frame: mean log-mel of each column, averaged per frame.

    Args:
        mel: ``[n_mels, S]`` log-mel of the clip.
        n_frames: T, the number of video frames covering the same window.

    Returns:
        float32 ``[T]``.
    """
    m = np.asarray(mel, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"mel must be [n_mels, S]; got {m.shape}")
    energy = m.mean(axis=0)                                          # [S]
    idx = np.arange(len(energy)) * n_frames // len(energy)          # column -> video frame
    sums = np.bincount(idx, weights=energy, minlength=n_frames)
    counts = np.maximum(np.bincount(idx, minlength=n_frames), 1)
    return (sums / counts).astype(np.float32)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (``np.corrcoef``); NaN below 3 points or when a signal is flat."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def mouth_envelope_correlation(frames: np.ndarray, mel: np.ndarray, max_lag: int = 2
                               ) -> tuple[float, int]:
    """Best Pearson correlation between mouth opening and speech energy over small lags.

    Args:
        frames: uint8 ``[T, 3, H, W]`` face crops.
        mel: ``[n_mels, S]`` log-mel over the same window.
        max_lag: lags tried, in video frames of the clip, from ``-max_lag`` to ``max_lag``.

    Returns:
        ``(best_corr, best_lag)``; a positive lag means the mouth follows the audio (speech at
        frame ``t`` opens the mouth at ``t + lag``). ``(nan, 0)`` when the signals are flat.
    """
    mouth = mouth_opening(frames)
    env = speech_envelope_from_mel(mel, len(mouth))
    best, best_lag = float("nan"), 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            c = _corr(mouth[lag:], env[:len(env) - lag])
        else:
            c = _corr(mouth[:lag], env[-lag:])
        if not np.isnan(c) and (np.isnan(best) or c > best):
            best, best_lag = c, lag
    return best, best_lag


# -- leading silence -------------------------------------------------------------------------
def leading_silence_seconds(wave: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                            frame_s: float = 0.02) -> float:
    """Seconds before the sound first rises within ``threshold_db`` of its loudest 20 ms frame.

    Args:
        wave: a waveform ``[n]`` or ``[n, ch]`` (a file's: :func:`amdd_kit.data.audio.native_audio`).
        sample_rate: its rate (Hz).
        threshold_db: level relative to the peak frame RMS that counts as sound (negative).
        frame_s: analysis frame length in seconds.

    Returns:
        Leading silence in seconds (0.0 when the sound starts at once; the whole duration when
        the file is silent throughout).
    """
    wave, sr = np.asarray(wave, dtype=np.float32), int(sample_rate)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    hop = max(1, int(round(frame_s * sr)))
    n = len(wave) // hop
    if n and np.abs(wave[:n * hop]).max() < 1e-8:   # digital silence throughout
        return n * hop / sr
    return leading_silence(wave, sr, threshold_db, frame_s)


# -- every trace, measured on the clip store ------------------------------------------------------
def mouth_sharpness(frames: np.ndarray) -> float:
    """Detail in the mouth relative to the eyes: mean |Laplacian| of the mouth region over that
    of the eye region (luma, after a 2x2 box filter), for uint8 ``[T, 3, H, W]`` face crops.

    A mouth re-rendered at low resolution (wav2lip) is blurrier than the eyes of the same face;
    the ratio cancels the overall sharpness of the video. The 2x2 box filter cancels a 2-px
    checkerboard exactly, so an fsgan face's checkerboard does not count as detail. A face swap
    softens the eyes as well, so under faceswap-wav2lip the mouth stands out less.
    """
    import cv2

    g = np.stack([cv2.blur(x, (2, 2)) for x in _grey(frames)])
    lap = lambda r: float(np.mean([np.abs(cv2.Laplacian(x, cv2.CV_32F)).mean() for x in r]))
    return lap(_region(g, 0.62, 0.82, 0.31, 0.69)) / max(lap(_region(g, 0.28, 0.47, 0.25, 0.75)),
                                                          1e-6)


def face_tone(frames: np.ndarray) -> np.ndarray:
    """``log(cheek colour / neck colour)`` per RGB channel ``[3]`` of uint8 ``[T, 3, H, W]`` crops.

    A face swap blends a foreign, colour-shifted inner face above the person's own neck: the
    ratio moves away from the one the same person's real videos show.
    """
    f = np.asarray(frames, np.float32)
    cheek = _region(f, 0.50, 0.63, 0.28, 0.72).mean(axis=(0, 2, 3))
    neck = _region(f, 0.90, 0.98, 0.40, 0.60).mean(axis=(0, 2, 3))
    return np.log((cheek + 1.0) / (neck + 1.0))


def store_traces(store, cutoff_hz: float = 5000.0) -> pd.DataFrame:
    """One row per clip of a :class:`~amdd_kit.data.store.ClipStore` with the trace measures
    that the model can see: ``checkerboard_db`` (:func:`checkerboard_score`),
    ``mouth_sharpness``, ``tone_shift`` (largest per-channel change of :func:`face_tone` from
    the mean of the same identity's real clips) and ``high_band`` (:func:`high_band_energy`).
    Columns ``method`` and ``identity`` come from the manifest.
    """
    m = store.manifest
    cfg = getattr(store, "data_config", None)
    f_min = getattr(cfg, "f_min", 20.0)
    f_max = getattr(cfg, "f_max", 8000.0)
    rows, tones = [], []
    for i in range(len(m)):
        fr = np.asarray(store.frames[i])
        tones.append(face_tone(fr))
        rows.append({"checkerboard_db": checkerboard_score(fr), "mouth_sharpness": mouth_sharpness(fr),
                     "high_band": float(high_band_energy(np.asarray(store.mels[i]), cutoff_hz,
                                                         f_min, f_max))})
    out = pd.DataFrame(rows)
    out["method"], out["identity"] = m["method"].to_numpy(), m["identity"].to_numpy()
    tones = np.stack(tones)
    shift = np.full(len(m), np.nan)
    for ident, idx in out.groupby("identity").indices.items():
        real = idx[out["method"].to_numpy()[idx] == "real"]
        if len(real):
            ref = tones[real].mean(axis=0)
            shift[idx] = np.abs(tones[idx] - ref).max(axis=1)
            if len(real) > 1:  # a real clip against the *other* real clips, not itself
                for j in real:
                    others = real[real != j]
                    shift[j] = np.abs(tones[j] - tones[others].mean(axis=0)).max()
    out["tone_shift"] = shift
    return out


#: Which measure shows which generator's trace, and in which direction (+1: larger than real).
TRACE_MEASURES: dict[str, tuple[str, int]] = {
    "checkerboard_db": ("fsgan up-sampling checkerboard", +1),
    "mouth_sharpness": ("wav2lip low-resolution mouth", -1),
    "tone_shift": ("face-swap colour / seam of a foreign inner face", +1),
    "high_band": ("RTVC cloned voice, band-limited", -1),
}


def trace_separability(table: pd.DataFrame) -> pd.DataFrame:
    """ROC AUC of each measure for each generator against the real clips (oriented so that 1.0
    means the generator's clips all lie on the trace side of every real clip; 0.5 = no trace).

    Returns a DataFrame indexed by generator, one column per measure of :data:`TRACE_MEASURES`.
    """
    from sklearn.metrics import roc_auc_score

    real = table[table["method"] == "real"]
    out = {}
    for method, g in table[table["method"] != "real"].groupby("method"):
        row = {}
        for col, (_, sign) in TRACE_MEASURES.items():
            a, b = real[col].dropna().to_numpy(), g[col].dropna().to_numpy()
            if len(a) and len(b):
                y = np.r_[np.zeros(len(a)), np.ones(len(b))]
                row[col] = float(roc_auc_score(y, sign * np.r_[a, b]))
            else:
                row[col] = float("nan")
        out[method] = row
    return pd.DataFrame.from_dict(out, orient="index")

"""Audio: a file's sound track decoded to mono, its leading silence, and the log-mel of windows.

Decoding (PyAV ``AudioResampler``)
    The audio track (or an external ``.wav``) is decoded and resampled with PyAV's
    ``AudioResampler`` (libswresample) to ``cfg.sample_rate`` mono float. We use it because it
    streams frame by frame while we decode, and down-mixes *any* channel layout (stereo, 5.1)
    with FFmpeg's standard matrix (centre and surround channels attenuated by -3 dB), with no
    extra dependency. Files whose layout swresample refuses fall back to a channel mean and
    ``torchaudio.functional.resample``. :func:`audio_of` reads from an open container, so that
    :func:`~amdd_kit.data.decode.clips_from_video` opens a video file once (audio first, then
    the frames).
Log-mel (torchaudio)
    ``torchaudio.transforms.MelSpectrogram`` (power 2, Slaney mel scale and norm, like librosa's
    defaults), then ``log(mel + 1e-6)``: digital silence gives ``log(1e-6) = -13.8``, finite,
    never ``-inf``/NaN. torchaudio because it batches all windows of a video in one call, is
    the same library the model uses and runs on a GPU for ``amdd-kit predict`` if wanted.
    Alignment: mel column ``j`` is centred on ``window_start + j * hop``; we feed the real audio
    from ``n_fft/2`` samples before the window (``center=False``), so the ``S = mel_frames``
    columns come out with no padding or cropping (zeros only beyond the ends of the recording).
Leading silence
    :func:`leading_silence`: audio quieter than ``cfg.silence_db`` below the peak (10 ms RMS
    frames) at the start; ``cfg.trim_silence`` drops it (and the same span of video).
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio

from ..config import DataConfig
from .video import SkipVideo, open_media

log = logging.getLogger(__name__)

LOG_EPS = 1e-6  # log(mel + LOG_EPS): finite on digital silence


def load_audio(path: str | Path, sample_rate: int) -> tuple[np.ndarray, float]:
    """Decode the first audio stream of a file to mono float32 at ``sample_rate``.

    Returns ``(samples [n], t0)``, ``t0`` the time of the first audio sample in the file's
    clock (seconds). Raises :class:`SkipVideo` (``no_audio``, ``corrupt``, ``empty``, ``missing``).
    """
    path = Path(path)
    with open_media(path) as container:
        return audio_of(container, path, sample_rate)


def native_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a file to mono float32 at the stream's OWN rate:
    ``(samples [n], sample_rate)`` (what the forensic measurements of :mod:`amdd_kit.traces`
    take); the file is opened once. Raises :class:`SkipVideo` (``no_audio``, ``corrupt``,
    ``empty``, ``missing``)."""
    path = Path(path)
    with open_media(path) as container:
        if not container.streams.audio:
            raise SkipVideo("no_audio", "no audio stream")
        sr = int(container.streams.audio[0].codec_context.sample_rate)
        samples, _ = audio_of(container, path, sr)
    return samples.astype(np.float32), sr


def audio_of(container, path: Path, sample_rate: int, until: float | None = None
             ) -> tuple[np.ndarray, float]:
    """:func:`load_audio` on an open container (decodes from where the container stands).

    ``until``: stop after the audio frame that covers this time (seconds, the file's clock);
    the samples may then end a frame (~20 ms) past it. None: decode the whole stream.
    """
    if not container.streams.audio:
        raise SkipVideo("no_audio", "no audio stream")
    stream = container.streams.audio[0]
    try:
        samples, t0 = _decode_audio_swr(container, stream, sample_rate, until)
    except SkipVideo:
        raise
    except (av.error.FFmpegError, ValueError) as e:
        log.info("%s: swresample failed (%s); using the channel-mean fallback", path, e)
        container.seek(0)
        samples, t0 = _decode_audio_fallback(container, stream, sample_rate)
    if samples.size == 0:
        raise SkipVideo("no_audio", "the audio stream holds no samples")
    return samples, t0


def _decode_audio_swr(container, stream, sample_rate: int, until: float | None = None
                      ) -> tuple[np.ndarray, float]:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    t0 = None
    try:
        for frame in container.decode(stream):
            if t0 is None:
                t0 = float(frame.time) if frame.time is not None else 0.0
            if until is not None and frame.time is not None and float(frame.time) > until:
                break
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.error.InvalidDataError as e:
        raise SkipVideo("corrupt", f"audio decode: {e}") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, t0 or 0.0


def _decode_audio_fallback(container, stream, sample_rate: int) -> tuple[np.ndarray, float]:
    chunks, t0, rate = [], None, stream.rate
    for frame in container.decode(stream):
        if t0 is None:
            t0 = float(frame.time) if frame.time is not None else 0.0
        a = frame.to_ndarray().astype(np.float32)
        ch = len(frame.layout.channels) or 1
        a = a if frame.format.is_planar else a.reshape(-1, ch).T
        if np.issubdtype(frame.to_ndarray().dtype, np.integer):
            a /= float(np.iinfo(frame.to_ndarray().dtype).max)
        chunks.append(a.mean(axis=0))
        rate = frame.sample_rate
    if not chunks:
        return np.zeros(0, np.float32), 0.0
    x = torch.from_numpy(np.concatenate(chunks))
    y = torchaudio.functional.resample(x, int(rate), sample_rate)
    return y.numpy().astype(np.float32), t0 or 0.0


def leading_silence(samples: np.ndarray, sample_rate: int, silence_db: float,
                    frame_s: float = 0.01) -> float:
    """Seconds of leading audio quieter than ``silence_db`` (dB, < 0) below the peak.

    Measured on RMS frames of ``frame_s`` seconds (10 ms). All-silent (or empty) audio returns
    0.0: nothing to trim.
    """
    hop = max(1, int(round(frame_s * sample_rate)))
    n = len(samples) // hop
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(samples[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    peak = rms.max()
    if peak <= 0:
        return 0.0
    loud = np.nonzero(rms >= peak * 10 ** (silence_db / 20))[0]
    return float(loud[0] * hop / sample_rate) if len(loud) else 0.0


@functools.lru_cache(maxsize=8)
def _mel_transform(sr: int, n_fft: int, win: int, hop: int, f_min: float, f_max: float,
                   n_mels: int):
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sr, n_fft=n_fft, win_length=win, hop_length=hop, f_min=f_min, f_max=f_max,
        n_mels=n_mels, center=False, power=2.0, norm="slaney", mel_scale="slaney")


def log_mel_windows(samples: np.ndarray, starts_s: np.ndarray, cfg: DataConfig,
                    audio_t0: float = 0.0) -> np.ndarray:
    """Log-mel of each window: float16 ``[K, n_mels, mel_frames]``.

    ``samples`` is mono float32 at ``cfg.sample_rate`` whose first sample sits at
    ``audio_t0`` seconds on the video's clock; ``starts_s`` are the window starts on that clock.
    """
    S, hop, n_fft = cfg.mel_frames, cfg.hop_length, cfg.n_fft
    length = (S - 1) * hop + n_fft
    segs = np.zeros((len(starts_s), length), dtype=np.float32)
    for k, s in enumerate(starts_s):
        a = int(round((s - audio_t0) * cfg.sample_rate)) - n_fft // 2
        lo, hi = max(a, 0), min(a + length, len(samples))
        if hi > lo:
            segs[k, lo - a:hi - a] = samples[lo:hi]
    mel = _mel_transform(cfg.sample_rate, n_fft, cfg.win_length, hop, float(cfg.f_min),
                         float(cfg.f_max), cfg.n_mels)(torch.from_numpy(segs))
    out = torch.log(mel + LOG_EPS).numpy()
    assert out.shape[-1] == S, (out.shape, S)
    return out.astype(np.float16)


__all__ = ["LOG_EPS", "load_audio", "native_audio", "audio_of", "leading_silence",
           "log_mel_windows"]

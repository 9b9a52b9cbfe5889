"""Decoding: one source video -> aligned clips (face-crop frames + log-mel).

One clip is ``frames`` uint8 ``[T, 3, H, W]`` (face crops) and ``mel`` float16
``[n_mels, S]`` that covers *exactly* the same time window (``DataConfig.window_seconds``).
This module knows nothing of datasets, worker pools or the clip store: it is the one call that
preprocessing (:mod:`~amdd_kit.data.preprocess`) and ``amdd-kit predict``
(:mod:`~amdd_kit.inference`) share.

Decoding (PyAV)
    Video is decoded with PyAV and resampled to ``cfg.fps`` by timestamp: for every instant of
    the ``cfg.fps`` grid we take the source frame nearest in time (so 30 or 29.97 fps sources
    and variable frame rates work); only the frames a clip needs are converted to RGB.
    A folder of images (VidTIMIT: extension-less JPEG files ``001 002 ...``) is read with
    OpenCV at ``cfg.fps``.
Audio (PyAV ``AudioResampler``)
    The audio track (or an external ``.wav``) is decoded and resampled with PyAV's
    ``AudioResampler`` (libswresample) to ``cfg.sample_rate`` mono float. We use it because it
    streams frame by frame while we decode, and down-mixes *any* channel layout (stereo, 5.1)
    with FFmpeg's standard matrix (centre and surround channels attenuated by -3 dB), with no
    extra dependency. Files whose layout swresample refuses fall back to a channel mean and
    ``torchaudio.functional.resample``. A video file is opened once: its audio is decoded
    first, only as far as the last planned window needs (the whole track with
    ``trim_silence``), then the container is rewound for the video frames.
Log-mel (torchaudio)
    ``torchaudio.transforms.MelSpectrogram`` (power 2, Slaney mel scale and norm, like librosa's
    defaults), then ``log(mel + 1e-6)``: digital silence gives ``log(1e-6) = -13.8``, finite,
    never ``-inf``/NaN. torchaudio because it batches all windows of a video in one call, is
    the same library the model uses and runs on a GPU for ``amdd-kit predict`` if wanted.
    Alignment: mel column ``j`` is centred on ``window_start + j * hop``; we feed the real audio
    from ``n_fft/2`` samples before the window (``center=False``), so the ``S = mel_frames``
    columns come out with no padding or cropping (zeros only beyond the ends of the recording).
Windows
    Up to ``cfg.clips_per_video`` non-overlapping windows of ``n_frames * frame_stride`` grid
    frames, taken back to back from the start of the video (after any trimmed silence), on the
    ``cfg.fps`` grid (starting at the video start keeps FakeAVCeleb's leading silence visible
    to the shortcut audit). With ``cfg.trim_silence``, leading audio quieter than ``cfg.silence_db``
    below the peak (10 ms RMS frames) and the same span of video are dropped first.
Faces
    :mod:`amdd_kit.data.faces`: the ``cfg.face_detector`` (Haar cascade by default, or dlib's
    HOG detector) on every ``cfg.detect_every``-th selected frame,
    smoothed, gaps filled from neighbours; an ``image_size`` window of source pixels around the
    face when it fits (``cfg.crop_mode="native"``, no resampling), else the box enlarged by
    ``cfg.face_margin`` resized to ``cfg.image_size``; black padding at the borders.

Problems become :class:`SkipVideo` with a reason from :data:`SKIP_REASONS`. It is a
``ValueError``, so a caller that only wants "unusable input" can catch that.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch
import torchaudio

from ..config import DataConfig
from .faces import crop_faces, crop_scale, detect_faces, face_detector

log = logging.getLogger(__name__)


#: Why a video produced no clip.
SKIP_REASONS: tuple[str, ...] = ("missing", "unsafe_path", "corrupt", "empty", "no_video",
                                 "no_audio", "no_face", "too_short", "error")
LOG_EPS = 1e-6  # log(mel + LOG_EPS): finite on digital silence


class SkipVideo(ValueError):
    """A video that yields no clip, with a ``reason`` (one of :data:`SKIP_REASONS`)."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; choose from {SKIP_REASONS}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class VideoClips:
    """The clips of one video.

    Attributes:
        frames: uint8 ``[K, T, 3, H, W]`` face crops.
        mels: float16 ``[K, n_mels, S]`` log-mel over the same windows.
        starts: float64 ``[K]`` window starts in seconds from the first video frame.
        info: facts about the source (``src_fps``, ``duration``, ``offset``, ``face_fraction``).
    """

    frames: np.ndarray
    mels: np.ndarray
    starts: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.starts)


# -- opening and audio --------------------------------------------------------------------------
def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise SkipVideo("missing", str(path))
    if path.is_file() and path.stat().st_size == 0:
        raise SkipVideo("empty", "zero-byte file")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError, ValueError) as e:
        raise SkipVideo("corrupt", f"cannot open: {e}") from None


def load_audio(path: str | Path, sample_rate: int) -> tuple[np.ndarray, float]:
    """Decode the first audio stream of a file to mono float32 at ``sample_rate``.

    Returns ``(samples [n], t0)``, ``t0`` the time of the first audio sample in the file's
    clock (seconds). Raises :class:`SkipVideo` (``no_audio``, ``corrupt``, ``empty``, ``missing``).
    """
    path = Path(path)
    with _open(path) as container:
        return _audio_of(container, path, sample_rate)


def _audio_of(container, path: Path, sample_rate: int, until: float | None = None
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


def _audio_needed_until(est: float | None, v_start: float, cfg: DataConfig) -> float | None:
    """The file-clock time after which no window can need audio, or None (decode it all).

    Without ``trim_silence`` the windows are planned from the container's duration alone, so
    the audio past the last planned window (plus the STFT's half frame) is never used: a 7 s
    video with four 0.64 s windows decodes 2.6 s of audio. (The plan only shrinks when the
    video turns out shorter than its header says.) With ``trim_silence`` the whole track is
    needed: its loudest frame sets the silence threshold.
    """
    if cfg.trim_silence or not est:
        return None
    starts = plan_windows(est, 0.0, cfg)
    if len(starts) == 0:
        return None
    return v_start + starts[-1] / cfg.fps + cfg.window_seconds + cfg.n_fft / cfg.sample_rate + 0.1


# -- window planning and video frames -------------------------------------------------------------
def plan_windows(duration: float, offset: float, cfg: DataConfig) -> np.ndarray:
    """Start indices (on the ``cfg.fps`` grid) of up to ``clips_per_video`` windows.

    ``duration`` and ``offset`` are in seconds. Windows do not overlap and are taken back to
    back from ``offset`` (the video start, or the end of the trimmed leading silence), as most
    published pipelines take the first frames of a video. This is also why a leading-silence
    shortcut (FakeAVCeleb) reaches a model, and why ``trim_silence`` removes it. Returns int64
    ``[K]``; empty when the video is too short.
    """
    n_grid = int(np.floor(duration * cfg.fps + 1e-6))
    off = int(np.ceil(offset * cfg.fps - 1e-6))
    win = cfg.n_frames * cfg.frame_stride
    avail = n_grid - off
    k = min(cfg.clips_per_video, max(avail, 0) // win)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    return off + np.arange(k, dtype=np.int64) * win


def _grid_targets(starts_idx: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """Times (s) of every frame of every window: ``[K * T]`` in window order."""
    j = np.arange(cfg.n_frames) * cfg.frame_stride
    return ((starts_idx[:, None] + j[None, :]) / cfg.fps).reshape(-1)


def _video_info(container, vs) -> tuple[float, float | None, float]:
    """(source fps, estimated duration or None, stream start time)."""
    rate = vs.average_rate or vs.guessed_rate or vs.base_rate
    fps = float(rate) if rate else 25.0
    start = float(vs.start_time * vs.time_base) if vs.start_time is not None and vs.time_base \
        else 0.0
    dur = None
    if vs.duration and vs.time_base:
        dur = float(vs.duration * vs.time_base)
    elif vs.frames and rate:
        dur = vs.frames / fps
    elif container.duration:
        dur = container.duration / 1e6
    return fps, dur, start


def _pick_frames(path: Path, targets: np.ndarray, container=None
                 ) -> tuple[list[np.ndarray], float, bool, float]:
    """Decode a video and take, for each target time (s, sorted), the nearest frame.

    ``container``: an already open PyAV container of ``path``, rewound to the start first (its
    audio may have been read); default: open ``path``. One open per file matters: probing an
    mp4 costs ~1.5 ms, 2% of a video's preprocessing. Returns ``(rgb frames, measured
    duration, covered, src_fps)``. ``covered`` is False when some targets lie past the end of
    the video (then ``duration`` is the true length).
    """
    if container is None:
        with _open(path) as c:
            return _nearest_frames(c, targets)
    try:
        container.seek(0)
    except av.error.FFmpegError as e:
        raise SkipVideo("corrupt", f"cannot rewind to the start: {e}") from None
    return _nearest_frames(container, targets)


def _nearest_frames(container, targets: np.ndarray
                    ) -> tuple[list[np.ndarray], float, bool, float]:
    """:func:`_pick_frames` on an open container, decoding from where it stands."""
    order = np.argsort(targets, kind="stable")
    picked: list[np.ndarray | None] = [None] * len(targets)
    if not container.streams.video:
        raise SkipVideo("no_video", "no video stream")
    vs = container.streams.video[0]
    vs.thread_count = 1  # one thread per preprocessing worker: workers are the parallelism
    src_fps, _, t_start = _video_info(container, vs)
    j, prev, prev_t, cache = 0, None, None, {}
    last_t, n = None, 0

    def take(frame, t_key):
        if t_key not in cache:
            cache.clear()
            # same pixels as to_ndarray(format="rgb24"), up to 3x faster in PyAV 18;
            # threads=1: PyAV's default (0) gives swscale a thread per CPU, and two workers
            # on two cores then wait on each other's threads (1.31x -> 1.91x, 2 workers)
            cache[t_key] = frame.reformat(format="rgb24", threads=1).to_ndarray()
        return cache[t_key]

    try:
        for n, frame in enumerate(container.decode(vs), start=1):
            t = (float(frame.time) - t_start) if frame.time is not None else (n - 1) / src_fps
            while j < len(order) and targets[order[j]] <= t:
                tt = targets[order[j]]
                if prev is not None and tt - prev_t <= t - tt:
                    picked[order[j]] = take(prev, prev_t)
                else:
                    picked[order[j]] = take(frame, t)
                j += 1
            prev, prev_t, last_t = frame, t, t
            if j == len(order):
                break
    except av.error.InvalidDataError as e:
        raise SkipVideo("corrupt", f"video decode: {e}") from None
    if n == 0 or prev is None:
        raise SkipVideo("corrupt", "no decodable video frame")
    duration = last_t + 1.0 / src_fps
    covered = True
    while j < len(order):  # targets after the last frame
        if targets[order[j]] > duration + 1e-6:
            covered = False
        picked[order[j]] = take(prev, prev_t)
        j += 1
    return picked, duration, covered, src_fps  # type: ignore[return-value]


_NUM = re.compile(r"(\d+)")


def _frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: [int(s) if s.isdigit() else s for s in _NUM.split(p.name)])


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SkipVideo("corrupt", f"unreadable image {path.name}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# -- one video -------------------------------------------------------------------------------------
def clips_from_video(video_path: str | Path, cfg: DataConfig,
                     audio_path: str | Path | None = None) -> VideoClips:
    """Decode one video (or VidTIMIT frame folder) into aligned clips.

    Args:
        video_path: a video file, or a folder of image frames (read at ``cfg.fps``).
        cfg: the :class:`~amdd_kit.config.DataConfig`.
        audio_path: external audio (e.g. ``.wav``); default: the video's own audio track.

    Returns:
        :class:`VideoClips`: ``frames`` uint8 ``[K,T,3,H,W]``, ``mels`` float16
        ``[K,n_mels,S]``, ``starts`` ``[K]`` seconds, ``1 <= K <= cfg.clips_per_video``.

    Raises:
        SkipVideo: ``missing, empty, corrupt, no_video, no_audio, no_face, too_short``.
    """
    video_path = Path(video_path)
    if not video_path.exists():
        raise SkipVideo("missing", str(video_path))
    is_dir = video_path.is_dir()
    if is_dir and audio_path is None:
        raise SkipVideo("no_audio", "a frame folder needs an external audio file")

    # 1. audio first: cheap, and the silence trim decides where the windows may start
    with contextlib.ExitStack() as stack:  # a video file is opened once (audio, then video)
        c = None if is_dir else stack.enter_context(_open(video_path))
        est = None
        if c is not None:
            if not c.streams.video:
                raise SkipVideo("no_video", "no video stream")
            _, est, v_start = _video_info(c, c.streams.video[0])
        if audio_path is not None:
            samples, _ = load_audio(audio_path, cfg.sample_rate)
            audio_t0 = 0.0
        else:
            samples, a_t0 = _audio_of(c, video_path, cfg.sample_rate,
                                      _audio_needed_until(est, v_start, cfg))
            audio_t0 = a_t0 - v_start
        offset = 0.0
        if cfg.trim_silence:
            offset = max(0.0, audio_t0 + leading_silence(samples, cfg.sample_rate,
                                                         cfg.silence_db))

        # 2. video: plan windows, then pick the frames nearest to the grid times
        if is_dir:
            files = _frame_files(video_path)
            if not files:
                raise SkipVideo("empty", "frame folder holds no files")
            src_fps, duration = cfg.fps, len(files) / cfg.fps
            starts = plan_windows(duration, offset, cfg)
            if len(starts) == 0:
                raise SkipVideo("too_short", f"{duration:.2f} s of video, offset {offset:.2f} s, "
                                             f"needs {cfg.window_seconds:.2f} s")
            idx = np.minimum(np.round(_grid_targets(starts, cfg) * cfg.fps).astype(int),
                             len(files) - 1)
            frames = [_read_image(files[i]) for i in idx]
        else:
            starts = plan_windows(est, offset, cfg) if est else np.zeros(0, np.int64)
            if len(starts):
                frames, duration, covered, src_fps = _pick_frames(
                    video_path, _grid_targets(starts, cfg), c)
            else:
                covered, duration = False, None
            if not covered:  # no usable estimate, or the video is shorter than its header says
                if duration is None:
                    _, duration, _, _ = _pick_frames(video_path, np.array([1e9]), c)
                starts = plan_windows(duration, offset, cfg)
                if len(starts) == 0:
                    raise SkipVideo("too_short",
                                    f"{duration:.2f} s of video, offset {offset:.2f} s, "
                                    f"needs {cfg.window_seconds:.2f} s")
                frames, duration, _, src_fps = _pick_frames(video_path,
                                                            _grid_targets(starts, cfg), c)

    # 3. faces: track over all selected frames, skip when the detector rarely finds one
    track = detect_faces(frames, every=cfg.detect_every, detector=face_detector(cfg.face_detector),
                         track=cfg.face_search == "track")
    if track.face_fraction < cfg.min_face_fraction:
        raise SkipVideo("no_face", f"face found in {track.found.sum()}/{len(track.found)} "
                                   f"sampled frames (< {cfg.min_face_fraction:.0%})")
    scale = crop_scale(track.boxes, cfg.image_size, cfg.face_margin, cfg.crop_mode)
    if scale < 1.0:
        log.info("%s: face crops shrunk by %.2f (face larger than %d px): detail finer than "
                 "%.1f px is averaged away", video_path, scale, cfg.image_size, 1 / scale)
    crops = crop_faces(frames, track.boxes, cfg.image_size, cfg.face_margin, cfg.crop_mode,
                       channels_first=True)
    crops = crops.reshape(len(starts), cfg.n_frames, *crops.shape[1:])  # [K, T, 3, H, W]

    # 4. audio windows
    starts_s = starts / cfg.fps
    mels = log_mel_windows(samples, starts_s, cfg, audio_t0)
    info = {"src_fps": round(float(src_fps), 3), "decoded_s": round(float(duration), 3),
            "offset": round(offset, 3), "face_fraction": round(track.face_fraction, 3),
            "crop_scale": round(scale, 3)}
    return VideoClips(crops, mels, starts_s.astype(np.float64), info)


__all__ = ["SKIP_REASONS", "LOG_EPS", "SkipVideo", "VideoClips", "clips_from_video", "load_audio",
           "leading_silence", "log_mel_windows", "plan_windows"]

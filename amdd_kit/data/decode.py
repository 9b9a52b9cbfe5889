"""Decoding: one source video -> aligned clips (face-crop frames + log-mel).

One clip is ``frames`` uint8 ``[T, 3, H, W]`` (face crops) and ``mel`` float16
``[n_mels, S]`` that covers *exactly* the same time window (``DataConfig.window_seconds``).
This module knows nothing of datasets, worker pools or the clip store: it is the one call that
preprocessing (:mod:`~amdd_kit.data.preprocess`) and ``amdd-kit predict``
(:mod:`~amdd_kit.inference`) share. It plans the windows and puts the pieces together:
frames from :mod:`~amdd_kit.data.video`, sound and log-mel from :mod:`~amdd_kit.data.audio`,
faces from :mod:`~amdd_kit.data.faces`.

Windows
    Up to ``cfg.clips_per_video`` non-overlapping windows of ``n_frames * frame_stride`` grid
    frames, taken back to back from the start of the video (after any trimmed silence), on the
    ``cfg.fps`` grid (starting at the video start keeps FakeAVCeleb's leading silence visible
    to the shortcut audit). With ``cfg.trim_silence``, leading audio quieter than ``cfg.silence_db``
    below the peak (:func:`~amdd_kit.data.audio.leading_silence`) and the same span of video are
    dropped first. A video file is opened once: its audio is decoded first, only as far as the
    last planned window needs (the whole track with ``trim_silence``), then the container is
    rewound for the video frames. A frame folder is read at ``cfg.fps``.
Faces
    :mod:`amdd_kit.data.faces`: the ``cfg.face_detector`` (Haar cascade by default, or dlib's
    HOG detector) on every ``cfg.detect_every``-th selected frame,
    smoothed, gaps filled from neighbours; an ``image_size`` window of source pixels around the
    face when it fits (``cfg.crop_mode="native"``, no resampling), else the box enlarged by
    ``cfg.face_margin`` resized to ``cfg.image_size``; black padding at the borders.

Problems become :class:`~amdd_kit.data.video.SkipVideo`.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DataConfig
from .audio import audio_of, leading_silence, load_audio, log_mel_windows
from .faces import crop_faces, crop_scale, detect_faces, face_detector
from .video import SkipVideo, frame_files, open_media, pick_frames, read_image, video_info

log = logging.getLogger(__name__)

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


# -- window planning ------------------------------------------------------------------------------
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
        c = None if is_dir else stack.enter_context(open_media(video_path))
        est = None
        if c is not None:
            if not c.streams.video:
                raise SkipVideo("no_video", "no video stream")
            _, est, v_start = video_info(c, c.streams.video[0])
        if audio_path is not None:
            samples, _ = load_audio(audio_path, cfg.sample_rate)
            audio_t0 = 0.0
        else:
            samples, a_t0 = audio_of(c, video_path, cfg.sample_rate,
                                     _audio_needed_until(est, v_start, cfg))
            audio_t0 = a_t0 - v_start
        offset = 0.0
        if cfg.trim_silence:
            offset = max(0.0, audio_t0 + leading_silence(samples, cfg.sample_rate,
                                                         cfg.silence_db))

        # 2. video: plan windows, then pick the frames nearest to the grid times
        if is_dir:
            files = frame_files(video_path)
            if not files:
                raise SkipVideo("empty", "frame folder holds no files")
            src_fps, duration = cfg.fps, len(files) / cfg.fps
            starts = plan_windows(duration, offset, cfg)
            if len(starts) == 0:
                raise SkipVideo("too_short", f"{duration:.2f} s of video, offset {offset:.2f} s, "
                                             f"needs {cfg.window_seconds:.2f} s")
            idx = np.minimum(np.round(_grid_targets(starts, cfg) * cfg.fps).astype(int),
                             len(files) - 1)
            frames = [read_image(files[i]) for i in idx]
        else:
            starts = plan_windows(est, offset, cfg) if est else np.zeros(0, np.int64)
            if len(starts):
                frames, duration, covered, src_fps = pick_frames(
                    video_path, _grid_targets(starts, cfg), c)
            else:
                covered, duration = False, None
            if not covered:  # no usable estimate, or the video is shorter than its header says
                if duration is None:
                    _, duration, _, _ = pick_frames(video_path, np.array([1e9]), c)
                starts = plan_windows(duration, offset, cfg)
                if len(starts) == 0:
                    raise SkipVideo("too_short",
                                    f"{duration:.2f} s of video, offset {offset:.2f} s, "
                                    f"needs {cfg.window_seconds:.2f} s")
                frames, duration, _, src_fps = pick_frames(video_path,
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


__all__ = ["VideoClips", "clips_from_video", "plan_windows"]

"""Video frames: the kit's one PyAV reader, and folders of image frames.

Every video frame the kit reads goes through :func:`pick_frames` (preprocessing) or
:func:`first_frames` (notebook 02's native-resolution look; :mod:`amdd_kit.traces` measures the
arrays it returns and opens no file), both built on one decode loop.

Decoding (PyAV)
    Frames are taken by timestamp: for each target time (seconds from the first video frame)
    the source frame nearest in time, so 30 or 29.97 fps sources and variable frame rates land
    on the ``cfg.fps`` grid; only the frames picked are converted to RGB.
Image folders (OpenCV)
    A folder of images (VidTIMIT: extension-less JPEG files ``001 002 ...``) is listed in
    numeric order by :func:`frame_files` and read with :func:`read_image`.

A file that cannot be used raises :class:`SkipVideo` with a reason from :data:`SKIP_REASONS`
(it is a ``ValueError``: a caller that only wants "unusable input" can catch that).
:func:`open_media` is the one place a media file (video or audio) is opened.
"""
from __future__ import annotations

import re
from pathlib import Path

import av
import cv2
import numpy as np

#: Why a video produced no clip.
SKIP_REASONS: tuple[str, ...] = ("missing", "unsafe_path", "corrupt", "empty", "no_video",
                                 "no_audio", "no_face", "too_short", "error")


class SkipVideo(ValueError):
    """A video that yields no clip, with a ``reason`` (one of :data:`SKIP_REASONS`)."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}; choose from {SKIP_REASONS}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def open_media(path: Path) -> av.container.InputContainer:
    """Open a video or audio file with PyAV. Raises :class:`SkipVideo` (``missing``, ``empty``,
    ``corrupt``)."""
    if not path.exists():
        raise SkipVideo("missing", str(path))
    if path.is_file() and path.stat().st_size == 0:
        raise SkipVideo("empty", "zero-byte file")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, OSError, ValueError) as e:
        raise SkipVideo("corrupt", f"cannot open: {e}") from None


def video_info(container, vs) -> tuple[float, float | None, float]:
    """(source fps, estimated duration or None, stream start time), all from the headers."""
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


def pick_frames(path: Path, targets: np.ndarray, container=None
                ) -> tuple[list[np.ndarray], float, bool, float]:
    """Decode a video and take, for each target time (s, sorted), the nearest frame.

    ``container``: an already open PyAV container of ``path``, rewound to the start first (its
    audio may have been read); default: open ``path``. One open per file matters: probing an
    mp4 costs ~1.5 ms, 2% of a video's preprocessing. Returns ``(rgb frames uint8 [H, W, 3]
    each, measured duration, covered, src_fps)``. ``covered`` is False when some targets lie
    past the end of the video (then ``duration`` is the true length).
    """
    if container is None:
        with open_media(path) as c:
            return _nearest_frames(c, targets)
    try:
        container.seek(0)
    except av.error.FFmpegError as e:
        raise SkipVideo("corrupt", f"cannot rewind to the start: {e}") from None
    return _nearest_frames(container, targets)


def first_frames(path: str | Path, n: int) -> np.ndarray:
    """The first ``n`` frames of a video at its native resolution: uint8 ``[n', H, W, 3]``,
    ``n' = n`` unless the video holds fewer frames.

    :func:`pick_frames` at the source's own frame times (``k / src_fps``), so each target lands
    on frame ``k``. Raises :class:`SkipVideo`.
    """
    path = Path(path)
    with open_media(path) as c:
        if not c.streams.video:
            raise SkipVideo("no_video", "no video stream")
        src_fps = video_info(c, c.streams.video[0])[0]
        frames, duration, _, src_fps = _nearest_frames(c, np.arange(n) / src_fps)
    return np.stack(frames[:max(1, min(n, int(round(duration * src_fps))))])


def _nearest_frames(container, targets: np.ndarray
                    ) -> tuple[list[np.ndarray], float, bool, float]:
    """:func:`pick_frames` on an open container, decoding from where it stands."""
    order = np.argsort(targets, kind="stable")
    picked: list[np.ndarray | None] = [None] * len(targets)
    if not container.streams.video:
        raise SkipVideo("no_video", "no video stream")
    vs = container.streams.video[0]
    vs.thread_count = 1  # one thread per preprocessing worker: workers are the parallelism
    src_fps, _, t_start = video_info(container, vs)
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


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder in numeric order (``2`` before ``10``)."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: [int(s) if s.isdigit() else s for s in _NUM.split(p.name)])


def read_image(path: Path) -> np.ndarray:
    """One image file as RGB uint8 ``[H, W, 3]``; ``SkipVideo("corrupt")`` when unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SkipVideo("corrupt", f"unreadable image {path.name}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


__all__ = ["SKIP_REASONS", "SkipVideo", "open_media", "video_info", "pick_frames",
           "first_frames", "frame_files", "read_image"]

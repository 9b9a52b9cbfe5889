"""Writing media files atomically: H.264/AAC mp4 and mpeg4 avi (PyAV), 16-bit wav, and
VidTIMIT-style folders of extension-less JPEG frames.

Every file goes to a temporary name first and is renamed, so a crash never leaves a half file.
"""
from __future__ import annotations

import os
import shutil
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def write_video(path: Path, frames: np.ndarray, fps: Fraction, audio: np.ndarray | None = None,
                sr: int = 16000, codec: str = "libx264", fmt: str = "mp4", crf: int = 18) -> None:
    """Write frames uint8 ``[T, H, W, 3]`` (+ audio float32 ``[n, ch]`` as AAC) with PyAV.

    Written to a temporary name first and renamed, so a crash never leaves a half file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        with av.open(str(tmp), "w", format=fmt) as box:
            vs = box.add_stream(codec, rate=fps)
            vs.width, vs.height = frames.shape[2], frames.shape[1]
            vs.pix_fmt = "yuv420p"
            if codec == "libx264":
                # one thread, no lookahead threads. NOTE: even so, libx264 here is not
                # bit-reproducible: between two renders with the same seed, 40 of 192 tiny
                # FakeAVCeleb videos differed, by up to 32 levels in every frame of a file (so
                # 61-68 of 382 store clips differ between fresh builds). The rendered frames
                # and the audio are exactly reproducible; the encode is not.
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

"""Helpers that write small *real* media files for the tests (PyAV, raw bytes).

Faces come from a real photograph: ``skimage.data.astronaut()`` when scikit-image is installed,
else the Grace Hopper portrait that matplotlib ships as sample data. The Haar cascade finds the
face in both.
"""
from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


@functools.lru_cache(maxsize=1)
def _photo() -> np.ndarray:
    """A real RGB portrait, uint8 [H, W, 3], cropped to the head and shoulders."""
    try:
        from skimage import data  # type: ignore
        img = data.astronaut()[0:300, 80:380]
    except ImportError:
        import matplotlib.cbook as cbook
        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)[0:480, 0:512]
    return np.ascontiguousarray(img)


def face_frame(width: int = 160, height: int = 128, shift: int = 0) -> np.ndarray:
    """An RGB frame ``[height, width, 3]`` with the photo's face in the middle (``shift`` px right)."""
    photo = _photo()
    side = min(width, height)
    face = cv2.resize(photo, (side, int(side * photo.shape[0] / photo.shape[1])))[:side]
    frame = np.full((height, width, 3), 90, np.uint8)
    x = max(0, min(width - side, (width - side) // 2 + shift))
    frame[:, x:x + side] = face[:height]
    return frame


def wall_frame(width: int = 160, height: int = 128, seed: int = 0) -> np.ndarray:
    """A blank wall: smooth grey texture, no face."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(128, 20, (height, width)).astype(np.float32), (0, 0), 6)
    return np.repeat(np.clip(noise, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 220.0,
         silence: bool = False) -> np.ndarray:
    """float32 ``[channels, n]``: a tone with a syllable-like envelope, or digital silence."""
    n = int(round(seconds * rate))
    if silence:
        return np.zeros((channels, n), np.float32)
    t = np.arange(n) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    sig = 0.3 * env * np.sin(2 * np.pi * freq * t)
    return np.stack([sig * (1 - 0.1 * c) for c in range(channels)]).astype(np.float32)


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_video(path: str | Path, seconds: float = 1.5, fps: float | Fraction = 25,
                width: int = 160, height: int = 128, face: bool = True,
                audio: str | None = "tone", sample_rate: int = 16_000, channels: int = 1,
                leading_silence: float = 0.0, video: bool = True) -> Path:
    """Write an H.264/AAC mp4.

    Args:
        audio: ``"tone"``, ``"silence"`` (digital zeros) or None (no audio stream).
        channels: 1, 2 or 6 (5.1).
        leading_silence: seconds of zeros before the tone starts.
        video: False writes an audio-only file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4") as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=rate)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"preset": "ultrafast"}
        aus = None
        if audio is not None:
            aus = out.add_stream("aac", rate=sample_rate, layout=_LAYOUTS[channels])
        if vs is not None:
            for i in range(int(round(seconds * float(rate)))):
                img = face_frame(width, height, shift=(i % 6) - 3) if face else \
                    wall_frame(width, height)
                for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(pkt)
            for pkt in vs.encode():
                out.mux(pkt)
        if aus is not None:
            sig = tone(seconds, sample_rate, channels, silence=audio == "silence")
            sig[:, : int(leading_silence * sample_rate)] = 0
            _encode_audio(out, aus, sig, sample_rate, channels)
    return path


def _encode_audio(out, stream, sig: np.ndarray, rate: int, channels: int) -> None:
    step = 1024
    for s in range(0, sig.shape[1], step):
        chunk = np.ascontiguousarray(sig[:, s:s + step])
        fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=_LAYOUTS[channels])
        fr.sample_rate, fr.pts = rate, s
        for pkt in stream.encode(fr):
            out.mux(pkt)
    for pkt in stream.encode():
        out.mux(pkt)


def write_wav(path: str | Path, seconds: float = 1.5, sample_rate: int = 16_000,
              channels: int = 1) -> Path:
    """A 16-bit PCM wav with a tone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sig = tone(seconds, sample_rate, channels)
    with av.open(str(path), "w", format="wav") as out:
        st = out.add_stream("pcm_s16le", rate=sample_rate, layout=_LAYOUTS[channels])
        pcm = (sig * 32767).astype(np.int16).T.reshape(1, -1)  # packed s16
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="s16",
                                        layout=_LAYOUTS[channels])
        fr.sample_rate, fr.pts = sample_rate, 0
        for pkt in st.encode(fr):
            out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


def write_frame_dir(folder: str | Path, seconds: float = 1.5, fps: int = 25,
                    width: int = 160, height: int = 128) -> Path:
    """VidTIMIT-style frames: extension-less JPEG files ``001 002 ...``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(int(round(seconds * fps))):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(face_frame(width, height, (i % 6) - 3),
                                                    cv2.COLOR_RGB2BGR))
        assert ok
        (folder / f"{i + 1:03d}").write_bytes(buf.tobytes())
    return folder


def write_truncated(path: str | Path, keep: float = 0.4) -> Path:
    """A real mp4 cut to ``keep`` of its bytes (the moov atom at the end is lost)."""
    path = Path(path)
    write_video(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_empty(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_text_as_video(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not a video\n" * 20)
    return path


def photo_copies(size: int = 224) -> dict[str, np.ndarray]:
    """The real photograph's head and shoulders at ``size`` px, and two harder copies:
    ``{"photo", "flipped" (mirrored), "darkened" (gamma 2.2 then x0.5: a dim room)}``."""
    f = cv2.resize(_photo(), (size, size), interpolation=cv2.INTER_AREA)
    dark = (255 * (f / 255.0) ** 2.2 * 0.5).round().astype(np.uint8)
    return {"photo": f, "flipped": np.ascontiguousarray(f[:, ::-1]), "darkened": dark}


def synthetic_faces(n: int = 192, size: int = 224, seed: int = 0) -> np.ndarray:
    """``n`` frames ``uint8 [n, size, size, 3]`` of the synthetic corpus' people, rendered by its
    own generator (:func:`amdd_kit.data.synthetic.generators.render_video`): 4 frames of a short
    clip per (identity, generator), the generators cycling over the 7 FakeAVCeleb methods."""
    from amdd_kit.config import METHODS
    from amdd_kit.data.synthetic.generators import VideoSpec, render_video

    out, k = [], 0
    while len(out) < n:
        method = METHODS[k % len(METHODS)]
        donor = k + 1 if method in ("faceswap", "fsgan", "faceswap-wav2lip", "fsgan-wav2lip") \
            else None
        spec = VideoSpec(rel=f"faces/{k}.mp4", method=method, ident=k, seed=k, fake_seed=k,
                         corpus_seed=seed, width=size, height=size, fps=Fraction(25), sr=16000,
                         channels=1, duration=0.32, donor=donor)
        frames, _ = render_video(spec)
        out.extend(frames[::2][:4])
        k += 1
    return np.stack(out[:n])

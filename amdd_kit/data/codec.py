"""Per-frame image codecs of the clip store: ``raw`` (no codec), ``png`` (lossless), ``jpeg``.

Frames are encoded one by one (a face crop uint8 ``[3, H, W]`` RGB -> bytes) with OpenCV, so
the preprocessing workers need no torch. JPEG chroma is ``"420"`` (colour at half resolution,
libjpeg's default) or ``"444"`` (full-resolution colour, about 35% more bytes at the same
quality; for traces that live in sharp colour edges). Luma, where the 2-px checkerboard and the
mouth detail live, is never subsampled.

JPEG frames are stored the way Motion-JPEG stores them: libjpeg's standard Huffman tables
(JPEG Annex K) and the JFIF header are the same for every frame, so :func:`encode_frame` leaves
them out (about 450 of the ~600 header bytes of a 224 px crop) and :func:`complete_jpeg` puts
them back before decoding. The quantisation tables stay in every frame, so a frame still says
its own quality. On 224 px crops at q90 4:2:0 this is 2.5 % more bytes than optimised Huffman
tables (``IMWRITE_JPEG_OPTIMIZE``, a second pass over the data) at half the encoding time
(0.16 against 0.28 ms a frame), and the decoded pixels are the same.

Decoding:

* on the CPU (DataLoader workers): :func:`decode_frames` with ``cv2.imdecode``; the format is
  read from the bytes, so a reader never needs to know the codec;
* batched on a GPU: :func:`decode_frames_torch` with ``torchvision.io.decode_jpeg(list,
  device="cuda")`` (nvjpeg). nvjpeg and libjpeg-turbo may differ by a grey level on a few
  pixels (different IDCTs): train and evaluate with the same decoder.

:func:`roundtrip` shows what a codec does to a clip (notebook 02 compares the forensic traces
before and after).
"""
from __future__ import annotations

import functools
from typing import Sequence

import cv2
import numpy as np

#: The frame codecs a store can use (``DataConfig.frame_codec``).
CODECS: tuple[str, ...] = ("raw", "png", "jpeg")
#: JPEG chroma subsampling (``DataConfig.jpeg_chroma``).
CHROMA: dict[str, int] = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                          "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}


def check_codec(codec: str, quality: int = 90, chroma: str = "420") -> None:
    """Raise ``ValueError`` for an unknown codec or chroma mode, or a JPEG quality outside
    1..100."""
    if codec not in CODECS:
        raise ValueError(f"frame_codec must be one of {CODECS}, got {codec!r}")
    if codec == "jpeg" and not 1 <= int(quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {quality}")
    if codec == "jpeg" and chroma not in CHROMA:
        raise ValueError(f"jpeg_chroma must be one of {sorted(CHROMA)}, got {chroma!r}")


def _params(codec: str, quality: int, chroma: str) -> list[int]:
    if codec == "jpeg":  # standard Huffman tables (no IMWRITE_JPEG_OPTIMIZE): see the module doc
        return [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR, CHROMA[chroma]]
    return [cv2.IMWRITE_PNG_COMPRESSION, 3]


_SOI, _SOS, _APP0, _DHT = b"\xff\xd8", 0xDA, 0xE0, 0xC4


def _segments(buf: bytes) -> tuple[list[bytes], bytes]:
    """A JPEG's marker segments between SOI and SOS (each with its marker), and the rest (SOS,
    entropy-coded data, EOI). Raises ``ValueError`` on bytes that are not a JPEG."""
    if buf[:2] != _SOI:
        raise ValueError("not a JPEG (no start-of-image marker)")
    segs, i = [], 2
    while i + 4 <= len(buf) and buf[i] == 0xFF and buf[i + 1] != _SOS:
        end = i + 2 + int.from_bytes(buf[i + 2:i + 4], "big")
        segs.append(buf[i:end])
        i = end
    if i + 2 > len(buf) or buf[i:i + 2] != b"\xff\xda":
        raise ValueError("torn JPEG header (no start-of-scan marker)")
    return segs, buf[i:]


@functools.lru_cache(maxsize=1)
def _standard_segments() -> frozenset[bytes]:
    """The JFIF (APP0) and Huffman (DHT) segments OpenCV's libjpeg writes into every JPEG
    without optimised tables: the same bytes at any quality and chroma subsampling."""
    img = np.zeros((16, 16, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", img, _params("jpeg", 90, "420"))
    segs, _ = _segments(buf.tobytes())
    return frozenset(g for g in segs if g[1] in (_APP0, _DHT))


def strip_standard_tables(buf: bytes) -> bytes:
    """A JPEG without the segments every frame shares (:func:`_standard_segments`): SOI, the
    quantisation tables, the frame and scan headers, the data. :func:`complete_jpeg` undoes it."""
    std = _standard_segments()
    segs, rest = _segments(buf)
    return _SOI + b"".join(g for g in segs if g not in std) + rest


def complete_jpeg(buf: bytes | memoryview | np.ndarray) -> bytes:
    """A stored frame as a standalone JPEG that any decoder reads: the shared JFIF and Huffman
    segments are put back (after SOI) when the frame has no Huffman tables of its own. PNGs and
    complete JPEGs are returned unchanged (as bytes)."""
    b = bytes(buf)
    if b[:2] != _SOI:
        return b
    segs, rest = _segments(b)
    if any(g[1] == _DHT for g in segs):
        return b
    std = sorted(_standard_segments(), key=lambda g: (g[1] != _APP0, g))  # JFIF first
    return _SOI + b"".join(std) + b"".join(segs) + rest


def encode_frame(frame_chw: np.ndarray, codec: str, quality: int = 90,
                 chroma: str = "420") -> bytes:
    """One RGB frame uint8 ``[3, H, W]`` -> encoded bytes (``png``, or ``jpeg`` without the
    shared tables: :func:`complete_jpeg` makes a standalone JPEG of it)."""
    check_codec(codec, quality, chroma)
    if codec == "raw":
        raise ValueError("the raw codec stores arrays, not encoded frames")
    f = np.asarray(frame_chw, dtype=np.uint8)
    # planar RGB -> interleaved BGR with cv2.merge: ~15x faster than numpy's strided
    # ascontiguousarray(f[::-1].transpose(1, 2, 0)), which cost as much as the JPEG encode
    bgr = cv2.merge([f[2], f[1], f[0]])
    ok, buf = cv2.imencode(".jpg" if codec == "jpeg" else ".png", bgr,
                           _params(codec, quality, chroma))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {codec} frame of shape {frame_chw.shape}")
    return strip_standard_tables(buf.tobytes()) if codec == "jpeg" else buf.tobytes()


def encode_frames(frames: np.ndarray, codec: str, quality: int = 90,
                  chroma: str = "420") -> list[bytes]:
    """Frames uint8 ``[N, 3, H, W]`` (any leading shape ``[..., 3, H, W]``) -> N encoded frames,
    in C order of the leading axes."""
    f = np.asarray(frames, dtype=np.uint8)
    return [encode_frame(x, codec, quality, chroma) for x in f.reshape(-1, *f.shape[-3:])]


def _imdecode_bgr(buf: bytes | np.ndarray | memoryview) -> np.ndarray:
    """Encoded bytes -> interleaved BGR uint8 ``[H, W, 3]`` (OpenCV)."""
    try:
        arr = np.frombuffer(complete_jpeg(buf), dtype=np.uint8)
    except ValueError as e:
        raise ValueError(f"cannot decode a frame of {len(bytes(buf))} bytes: {e}") from None
    bgr = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode a frame of {arr.size} bytes (not PNG/JPEG, or torn)")
    return bgr


def decode_frame(buf: bytes | np.ndarray | memoryview) -> np.ndarray:
    """Encoded bytes (PNG or JPEG, complete or stored without the shared tables) -> RGB frame
    uint8 ``[3, H, W]``."""
    return decode_frames([buf])[0]


def decode_frames(bufs: Sequence[bytes | np.ndarray | memoryview]) -> np.ndarray:
    """Encoded frames -> uint8 ``[N, 3, H, W]`` on the CPU (OpenCV, one thread per worker).

    Each frame's BGR planes are split straight into the output (``cv2.split`` with destination
    views, reversed to RGB): no per-frame plane arrays and no final stack, whose allocations
    made decoding up to 40 % slower depending on the heap's state."""
    if not len(bufs):
        raise ValueError("no frames to decode")
    first = _imdecode_bgr(bufs[0])
    out = np.empty((len(bufs), 3, *first.shape[:2]), dtype=np.uint8)
    for i, b in enumerate(bufs):
        bgr = first if i == 0 else _imdecode_bgr(b)
        if bgr.shape != first.shape:
            raise ValueError(f"frame {i} is {bgr.shape[1]}x{bgr.shape[0]}, frame 0 "
                             f"{first.shape[1]}x{first.shape[0]}: one clip's frames share a size")
        cv2.split(bgr, [out[i, 2], out[i, 1], out[i, 0]])  # written in place: BGR -> RGB planes
    return out


def decode_frames_torch(bufs: Sequence[bytes | np.ndarray], device: str = "cpu"):
    """Encoded JPEG (or PNG) frames -> torch uint8 ``[N, 3, H, W]`` on ``device``.

    JPEG on CUDA is one batched nvjpeg call (``torchvision.io.decode_jpeg(list,
    device="cuda")``); PNG always decodes on the CPU (torchvision has no GPU PNG decoder) and
    is then moved.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png

    data = [torch.frombuffer(bytearray(complete_jpeg(b)), dtype=torch.uint8) for b in bufs]
    if not data:
        raise ValueError("no frames to decode")
    if bytes(data[0][:2].tolist()) == b"\xff\xd8":  # JPEG start-of-image marker
        out = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        return torch.stack(list(out)).to(device)
    return torch.stack([decode_png(d, mode=ImageReadMode.RGB) for d in data]).to(device)


def roundtrip(frames: np.ndarray, codec: str, quality: int = 90,
              chroma: str = "420") -> np.ndarray:
    """What the store keeps of a clip: ``frames`` uint8 ``[..., 3, H, W]`` encoded and decoded
    with ``codec`` (``raw`` and ``png`` return the frames unchanged), same shape and dtype.

    For notebook 02: ``roundtrip(clip, "jpeg", cfg.data.jpeg_quality, cfg.data.jpeg_chroma)``
    next to the clip shows what the paper store does to each trace."""
    check_codec(codec, quality, chroma)
    f = np.asarray(frames, dtype=np.uint8)
    if codec == "raw":
        return f.copy()
    dec = decode_frames(encode_frames(f, codec, quality, chroma))
    return dec.reshape(f.shape)


def codec_label(codec: str, quality: int = 90, chroma: str = "420") -> str:
    """How figures and tables name a store codec: ``"raw"``, ``"png"`` or e.g.
    ``"jpeg q85 4:2:0"``."""
    check_codec(codec, quality, chroma)
    return f"jpeg q{quality} {':'.join(chroma)}" if codec == "jpeg" else codec


def encoded_bytes_per_frame(frames: np.ndarray, codec: str, quality: int = 90,
                            chroma: str = "420") -> float:
    """Mean encoded size (bytes) of the frames ``[..., 3, H, W]`` (raw: ``3 * H * W``)."""
    check_codec(codec, quality, chroma)
    f = np.asarray(frames, dtype=np.uint8)
    if codec == "raw":
        return float(np.prod(f.shape[-3:]))
    return float(np.mean([len(b) for b in encode_frames(f, codec, quality, chroma)]))


__all__ = ["CODECS", "CHROMA", "check_codec", "complete_jpeg", "strip_standard_tables",
           "encode_frame", "encode_frames", "decode_frame", "decode_frames", "decode_frames_torch",
           "roundtrip", "codec_label", "encoded_bytes_per_frame"]

"""The clip store: a folder per dataset and config that loaders read memory-mapped.

Layout of ``STORE/`` (see docs/contracts.md)::

    manifest.parquet   one row per clip: the adapter's manifest columns + clip_id, video_id,
                       clip_index (0.. within its video), start_s, clip_label, method_idx
    frames.npy         uint8   [N, T, 3, H, W]   face crops      (frame_codec "raw": memmap)
    frames-00000.bin   ...                       face crops      (frame_codec "png"/"jpeg":
    frames_index.npy   int64   [N, T, 3]         shard files of encoded frames + per-frame
                                                 (shard, byte offset, size); data/shards.py)
    mels.npy           float16 [N, n_mels, S]    log-mel         (contiguous, memory-mapped)
    skipped.csv        path, reason, detail: every input that produced no clip
    data_config.json   the DataConfig the store was built with
    _work/             per-video results of preprocessing (resumable; data/workdir.py)

:func:`pack` is a separate, repeatable step: it rebuilds the files above from ``_work/`` (and,
with an encoded codec, from the shard records), writing each to a temporary name and renaming
it into place; it reads ``_work/`` and the shards through a
:class:`~amdd_kit.data.workdir.WorkDir` and never writes them beyond settling leftover work
items. With ``png``/``jpeg`` the frames are written once: a finished video's work item is
appended to the current shard as one record and then deleted
(:meth:`~amdd_kit.data.workdir.WorkDir.settle`), during preprocessing already, so the disk holds
about one copy of the store at any time; ``pack`` only writes the small index and ``mels.npy``. ``ClipStore.frames`` is then an
:class:`EncodedFrames`: indexed like the memmap, it decodes on access.

Clip labels of partial fakes (LAV-DF): a window is labelled fake (``clip_label = 1``) iff it
overlaps one of the video's ``fake_segments`` by at least one video frame (``1 / fps`` s);
otherwise ``clip_label = 0`` even though the video is fake. ``label`` keeps the video-level
label and ``method`` the video's generator, so both views stay available.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import METHODS, DataConfig
from . import shards
from .codec import decode_frames
from .workdir import WorkDir, read_data_config

CLIP_COLUMNS: tuple[str, ...] = ("clip_id", "video_id", "clip_index", "start_s", "clip_label",
                                 "method_idx")


def store_dir(data_dir: str | Path, dataset: str, cfg_name: str, suffix: str = "") -> Path:
    """``DATA/stores/<dataset>-<cfg_name>[-suffix]``."""
    name = f"{dataset}-{cfg_name}" + (f"-{suffix}" if suffix else "")
    return Path(data_dir) / "stores" / name


@dataclass
class StoreSummary:
    """What a preprocessing run produced.

    Attributes:
        path: the store folder.
        dataset: dataset name.
        videos: videos in the manifest (plus the adapter's problem rows in ``skipped``).
        videos_ok: videos that gave at least one clip.
        clips: clips in the store.
        skipped: inputs with no clip, by reason (adapter problems included).
        processed: videos processed in this run (the rest were reused from ``_work/``).
        seconds: wall time of the run.
    """

    path: str
    dataset: str
    videos: int
    videos_ok: int
    clips: int
    skipped: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def clip_label(label: int, fake_segments: str, start_s: float, window_s: float,
               fps: float) -> int:
    """Label of one window: the video label, except for partial fakes (see module docstring)."""
    if not label:
        return 0
    segs = json.loads(fake_segments or "[]")
    if not segs:
        return 1
    end = start_s + window_s
    overlap = max((min(end, float(e)) - max(start_s, float(s)) for s, e in segs), default=0.0)
    return int(overlap >= 1.0 / fps - 1e-9)


def _method_idx(method: str) -> int:
    return METHODS.index(method) if method in METHODS else -1


def _clip_rows(r, starts: np.ndarray, first: int, cfg: DataConfig) -> list[dict]:
    base = r._asdict()
    return [{**base, "clip_id": first + j, "clip_index": j, "start_s": float(s),
             "clip_label": clip_label(int(r.label), r.fake_segments, float(s),
                                      cfg.window_seconds, cfg.fps),
             "method_idx": _method_idx(r.method)} for j, s in enumerate(starts)]


def pack(out: str | Path, cfg: DataConfig | None = None) -> StoreSummary:
    """Pack ``out/_work/`` (and the shards) into the store files (see module docstring).

    ``cfg`` defaults to ``out/data_config.json``; when given it must match it. Videos of the
    manifest with no result yet are listed in ``skipped.csv`` as ``pending``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    work = WorkDir(out, cfg)
    videos, problems, dataset = work.sources()
    cfg = work.cfg

    # pass 1: which videos have clips, how many (encoded: leftover work items go to the shards)
    counts: dict[str, int] = {}
    skip_rows = []
    for r in videos.itertuples():
        k = work.n_clips(r.video_id)
        if k is not None:
            counts[r.video_id] = k
        else:
            skip_rows.append({"path": r.path, **work.skip(r.video_id)})
    skipped_df = pd.concat([problems[["path", "reason", "detail"]],
                            pd.DataFrame(skip_rows, columns=["path", "reason", "detail"])],
                           ignore_index=True).astype(str)
    n = sum(counts.values())

    # pass 2: fill the arrays (temporary names, renamed at the end)
    T, H, M, S = cfg.n_frames, cfg.image_size, cfg.n_mels, cfg.mel_frames
    frames_name = frames_file(cfg)
    tmp = {name: out / f".{name}.tmp"
           for name in (frames_name, "mels.npy", "manifest.parquet", "skipped.csv")}
    mels = np.lib.format.open_memmap(tmp["mels.npy"], mode="w+", dtype=np.float16,
                                     shape=(n, M, S))
    if frames_name == "frames.npy":
        frames = np.lib.format.open_memmap(tmp[frames_name], mode="w+", dtype=np.uint8,
                                           shape=(n, T, 3, H, H))
    else:
        frames = np.zeros((n, T, 3), dtype=np.int64)
    want = {"mels": (M, S), "frames": (T, 3, H, H), "index": (T, 3)}
    rows, i = [], 0
    for r in videos.itertuples(index=False):
        k = counts.get(r.video_id, 0)
        if not k:
            continue
        got = work.clips(r.video_id)
        bad = {key: a.shape for key, a in got.items() if key in want and a.shape[1:] != want[key]}
        if bad:
            raise ValueError(f"video {r.video_id} in {work.path} has shapes {bad}, not what "
                             f"{out / 'data_config.json'} says")
        mels[i:i + k] = got["mels"]
        frames[i:i + k] = got["frames" if "frames" in got else "index"]
        rows.extend(_clip_rows(r, got["starts"], i, cfg))
        i += k
    mels.flush()
    del mels
    if frames_name == "frames.npy":
        frames.flush()
    else:
        with open(tmp[frames_name], "wb") as f:
            np.save(f, frames)
    del frames
    cols = ["clip_id", "video_id"] + [c for c in videos.columns if c != "video_id"] + \
        ["clip_index", "start_s", "clip_label", "method_idx"]
    manifest = pd.DataFrame(rows, columns=cols)
    for c in ("clip_id", "clip_index", "clip_label", "method_idx", "label", "video_fake",
              "audio_fake"):
        manifest[c] = manifest[c].astype("int64")
    manifest["start_s"] = manifest["start_s"].astype("float64")
    manifest.to_parquet(tmp["manifest.parquet"], index=False)
    skipped_df.to_csv(tmp["skipped.csv"], index=False)
    for name, path in tmp.items():
        os.replace(path, out / name)
    by_reason = skipped_df["reason"].value_counts().to_dict() if len(skipped_df) else {}
    return StoreSummary(path=str(out), dataset=dataset, videos=len(videos),
                        videos_ok=len(counts), clips=n,
                        skipped={str(k): int(v) for k, v in sorted(by_reason.items())},
                        seconds=round(time.perf_counter() - t0, 2))


class EncodedFrames:
    """The frames of an encoded store, indexed like the raw memmap ``uint8 [N, T, 3, H, W]``.

    ``frames[i]`` decodes clip ``i`` to uint8 ``[T, 3, H, W]`` (OpenCV, CPU);
    ``frames[slice | int array | bool mask]`` -> ``[n, T, 3, H, W]``; ``np.asarray(frames)``
    decodes everything (small stores only). :meth:`encoded` gives the compressed bytes of a
    clip (for batched GPU decoding with :func:`~amdd_kit.data.codec.decode_frames_torch`).
    Shards are memory-mapped lazily, so the object is cheap to pickle into DataLoader workers.
    """

    dtype = np.dtype(np.uint8)
    ndim = 5

    def __init__(self, path: str | Path, index: np.ndarray, frame_shape: tuple[int, int, int]):
        self.path = Path(path)
        self.index = index
        self.shape = (index.shape[0], index.shape[1], *frame_shape)
        self._maps: dict[int, np.memmap] = {}

    def __getstate__(self):
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return self.shape[0]

    def _shard(self, s: int) -> np.memmap:
        if s not in self._maps:
            self._maps[s] = np.memmap(self.path / shards.shard_name(s), dtype=np.uint8,
                                      mode="r")
        return self._maps[s]

    def encoded(self, i: int) -> list[memoryview]:
        """The ``T`` encoded frames of clip ``i`` (zero-copy views of the shard). JPEG frames
        are stored without the Huffman tables they all share:
        :func:`~amdd_kit.data.codec.complete_jpeg` makes a standalone ``.jpg`` of one."""
        return [memoryview(self._shard(int(s))[o:o + n]) for s, o, n in self.index[i]]

    def clip(self, i: int) -> np.ndarray:
        """Decoded clip ``i``: uint8 ``[T, 3, H, W]``."""
        return decode_frames(self.encoded(i))

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"clip {i} out of range for a store of {len(self)} clips")
            return self.clip(i % len(self))
        idx = np.arange(len(self))[key]
        return np.stack([self.clip(int(i)) for i in idx]) if len(idx) else \
            np.zeros((0, *self.shape[1:]), dtype=np.uint8)

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a.astype(dtype) if dtype is not None else a

    def __repr__(self) -> str:
        return f"EncodedFrames(shape={self.shape}, shards={len(shards.shard_paths(self.path))})"


def frames_file(cfg: DataConfig) -> str:
    """The file of a store that holds its frames: ``frames.npy`` (``frame_codec`` raw, the frames
    themselves) or ``frames_index.npy`` (png/jpeg: where each encoded frame lies in the shards).

    The one test of a store's format: it reads the store's config, never which files are there.
    """
    return "frames.npy" if cfg.frame_codec == "raw" else "frames_index.npy"


def open_frames(path: str | Path, cfg: DataConfig | None = None):
    """The frames of the store at ``path``: a read-only memmap (raw) or :class:`EncodedFrames`.

    ``cfg``: the store's :class:`DataConfig`; default: read from ``path/data_config.json``.
    """
    path = Path(path)
    cfg = read_data_config(path) if cfg is None else cfg
    name = frames_file(cfg)
    if name == "frames.npy":
        return np.load(path / name, mmap_mode="r")
    return EncodedFrames(path, np.load(path / name), (3, cfg.image_size, cfg.image_size))


class ClipStore:
    """A packed clip store, opened read-only and memory-mapped.

    Attributes:
        path: the store folder.
        manifest: DataFrame, one row per clip (``clip_id`` = row index).
        frames: uint8 ``[N, T, 3, H, W]``: a read-only memmap (``frame_codec`` raw) or an
            :class:`EncodedFrames` that decodes the clips it is indexed with.
        mels: read-only memmap float16 ``[N, n_mels, S]``.
        skipped: DataFrame ``path, reason, detail``.
        data_config: the :class:`DataConfig` the store was built with.

    Raises ``FileNotFoundError`` when a file is missing and ``ValueError`` when shapes disagree
    with ``data_config.json`` or with the manifest.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        cfg_file = self.path / "data_config.json"
        self.data_config = read_data_config(self.path) if cfg_file.exists() else None
        frames = frames_file(self.data_config) if self.data_config is not None else "frames.npy"
        need = ["manifest.parquet", frames, "mels.npy", "data_config.json"]
        missing = [n for n in need if not (self.path / n).exists()]
        if missing:
            raise FileNotFoundError(f"{self.path} is not a clip store (missing {missing}); build "
                                    "it with `amdd-kit preprocess` or preprocess_dataset()")
        self.manifest = pd.read_parquet(self.path / "manifest.parquet")
        self.frames = open_frames(self.path, self.data_config)
        self.mels = np.load(self.path / "mels.npy", mmap_mode="r")
        sk = self.path / "skipped.csv"
        self.skipped = pd.read_csv(sk, dtype=str, keep_default_na=False) if sk.exists() \
            else pd.DataFrame(columns=["path", "reason", "detail"])
        self._validate()

    def _validate(self) -> None:
        c, n = self.data_config, len(self.manifest)
        want_f = (n, c.n_frames, 3, c.image_size, c.image_size)
        want_m = (n, c.n_mels, c.mel_frames)
        name = frames_file(c)
        if self.frames.shape != want_f or self.frames.dtype != np.uint8:
            raise ValueError(f"{self.path}/{name} is {self.frames.dtype}{self.frames.shape}, "
                             f"expected uint8{want_f}: re-run pack()")
        if isinstance(self.frames, EncodedFrames):
            have = {int(p.stem.split("-")[1]) for p in shards.shard_paths(self.path)}
            need = set(np.unique(self.frames.index[..., 0]).tolist()) if n else set()
            if need - have:
                raise FileNotFoundError(f"{self.path}: shard files {sorted(need - have)} are "
                                        "missing: re-run preprocess")
        if self.mels.shape != want_m or self.mels.dtype != np.float16:
            raise ValueError(f"{self.path}/mels.npy is {self.mels.dtype}{self.mels.shape}, "
                             f"expected float16{want_m}: re-run pack()")
        if n and not (self.manifest["clip_id"].to_numpy() == np.arange(n)).all():
            raise ValueError(f"{self.path}/manifest.parquet: clip_id is not 0..N-1")

    def __len__(self) -> int:
        return len(self.manifest)

    def __repr__(self) -> str:
        return (f"ClipStore({str(self.path)!r}, clips={len(self)}, "
                f"videos={self.manifest['video_id'].nunique() if len(self) else 0}, "
                f"skipped={len(self.skipped)})")

    def clip(self, i: int) -> dict:
        """One clip: ``{"frames" [T,3,H,W] uint8, "mel" [n_mels,S] float16, **manifest row}``."""
        return {"frames": np.asarray(self.frames[i]), "mel": np.asarray(self.mels[i]),
                **self.manifest.iloc[i].to_dict()}

    def summary(self) -> dict:
        """Counts for reports: clips, videos, per method / label, skipped by reason."""
        m = self.manifest
        return {
            "n_clips": int(len(m)),
            "n_videos": int(m["video_id"].nunique()) if len(m) else 0,
            "clips_per_method": {str(k): int(v) for k, v in m["method"].value_counts().items()},
            "clips_per_label": {str(k): int(v) for k, v in m["clip_label"].value_counts().items()},
            "skipped": {str(k): int(v) for k, v in self.skipped["reason"].value_counts().items()},
        }

"""The clip store: a folder per dataset and config that loaders read memory-mapped.

Layout of ``STORE/`` (see docs/contracts.md)::

    manifest.parquet   one row per clip: the adapter's manifest columns + clip_id, video_id,
                       clip_index (0.. within its video), start_s, clip_label, method_idx
    frames.npy         uint8   [N, T, 3, H, W]   face crops      (contiguous, memory-mapped)
    mels.npy           float16 [N, n_mels, S]    log-mel         (contiguous, memory-mapped)
    skipped.csv        path, reason, detail: every input that produced no clip
    data_config.json   the DataConfig the store was built with
    _work/             per-video results of preprocessing (resumable); pack() reads them

:func:`pack` is a separate, repeatable step: it rebuilds the four files from ``_work/``, writing
each to a temporary name and renaming it into place.

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


def pack(out: str | Path, cfg: DataConfig | None = None) -> StoreSummary:
    """Pack ``out/_work/`` into ``manifest.parquet``, ``frames.npy``, ``mels.npy``, ``skipped.csv``.

    ``cfg`` defaults to ``out/data_config.json``; when given it must match it. Videos of the
    manifest with no work file yet are listed in ``skipped.csv`` as ``pending``.
    """
    from .preprocess import check_data_config, load_work_item

    t0 = time.perf_counter()
    out = Path(out)
    work = out / "_work"
    if not (work / "videos.parquet").exists():
        raise FileNotFoundError(f"{work / 'videos.parquet'} not found: run preprocess_dataset "
                                "(or `amdd-kit preprocess`) first")
    if cfg is None:
        cfg = DataConfig(**json.loads((out / "data_config.json").read_text()))
    check_data_config(out, cfg)
    videos = pd.read_parquet(work / "videos.parquet")
    problems = pd.read_csv(work / "problems.csv", dtype=str, keep_default_na=False) \
        if (work / "problems.csv").exists() else pd.DataFrame(columns=["path", "reason", "detail"])
    dataset = json.loads((work / "source.json").read_text())["dataset"] \
        if (work / "source.json").exists() else ""

    # pass 1: which videos have clips, how many
    counts: dict[str, int] = {}
    skipped = [problems[["path", "reason", "detail"]]]
    skip_rows = []
    for r in videos.itertuples():
        npz = work / f"{r.video_id}.npz"
        if npz.exists():
            with np.load(npz) as z:
                counts[r.video_id] = int(z["starts"].shape[0])
            continue
        item = load_work_item(work, r.video_id)
        if item is None:
            item = {"reason": "pending", "detail": "not processed yet: re-run preprocess"}
        skip_rows.append({"path": r.path, "reason": item["reason"], "detail": item["detail"]})
    skipped.append(pd.DataFrame(skip_rows, columns=["path", "reason", "detail"]))
    skipped_df = pd.concat(skipped, ignore_index=True).astype(str)
    n = sum(counts.values())

    # pass 2: fill the memmaps (temporary names, renamed at the end)
    T, H, M, S = cfg.n_frames, cfg.image_size, cfg.n_mels, cfg.mel_frames
    f_tmp, m_tmp = out / ".frames.npy.tmp", out / ".mels.npy.tmp"
    frames = np.lib.format.open_memmap(f_tmp, mode="w+", dtype=np.uint8, shape=(n, T, 3, H, H))
    mels = np.lib.format.open_memmap(m_tmp, mode="w+", dtype=np.float16, shape=(n, M, S))
    rows, i = [], 0
    for r in videos.itertuples(index=False):
        k = counts.get(r.video_id, 0)
        if not k:
            continue
        item = load_work_item(work, r.video_id)
        if item["frames"].shape[1:] != (T, 3, H, H) or item["mels"].shape[1:] != (M, S):
            raise ValueError(f"{work / (r.video_id + '.npz')} has shapes {item['frames'].shape}, "
                             f"{item['mels'].shape}, not what {out / 'data_config.json'} says")
        frames[i:i + k] = item["frames"]
        mels[i:i + k] = item["mels"]
        base = r._asdict()
        for j, s in enumerate(item["starts"]):
            rows.append({**base, "clip_id": i + j, "clip_index": j, "start_s": float(s),
                         "clip_label": clip_label(int(r.label), r.fake_segments, float(s),
                                                  cfg.window_seconds, cfg.fps),
                         "method_idx": _method_idx(r.method)})
        i += k
    frames.flush()
    mels.flush()
    del frames, mels
    cols = ["clip_id", "video_id"] + [c for c in videos.columns if c != "video_id"] + \
        ["clip_index", "start_s", "clip_label", "method_idx"]
    manifest = pd.DataFrame(rows, columns=cols)
    for c in ("clip_id", "clip_index", "clip_label", "method_idx", "label", "video_fake",
              "audio_fake"):
        manifest[c] = manifest[c].astype("int64")
    manifest["start_s"] = manifest["start_s"].astype("float64")
    manifest.to_parquet(out / ".manifest.parquet.tmp", index=False)
    skipped_df.to_csv(out / ".skipped.csv.tmp", index=False)
    for name in ("frames.npy", "mels.npy", "manifest.parquet", "skipped.csv"):
        os.replace(out / f".{name}.tmp", out / name)
    by_reason = skipped_df["reason"].value_counts().to_dict() if len(skipped_df) else {}
    return StoreSummary(path=str(out), dataset=dataset, videos=len(videos),
                        videos_ok=len(counts), clips=n,
                        skipped={str(k): int(v) for k, v in sorted(by_reason.items())},
                        seconds=round(time.perf_counter() - t0, 2))


class ClipStore:
    """A packed clip store, opened read-only and memory-mapped.

    Attributes:
        path: the store folder.
        manifest: DataFrame, one row per clip (``clip_id`` = row index).
        frames: read-only memmap uint8 ``[N, T, 3, H, W]``.
        mels: read-only memmap float16 ``[N, n_mels, S]``.
        skipped: DataFrame ``path, reason, detail``.
        data_config: the :class:`DataConfig` the store was built with.

    Raises ``FileNotFoundError`` when a file is missing and ``ValueError`` when shapes disagree
    with ``data_config.json`` or with the manifest.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        need = ["manifest.parquet", "frames.npy", "mels.npy", "data_config.json"]
        missing = [n for n in need if not (self.path / n).exists()]
        if missing:
            raise FileNotFoundError(f"{self.path} is not a clip store (missing {missing}); build "
                                    "it with `amdd-kit preprocess` or preprocess_dataset()")
        self.data_config = DataConfig(**json.loads((self.path / "data_config.json").read_text()))
        self.manifest = pd.read_parquet(self.path / "manifest.parquet")
        self.frames = np.load(self.path / "frames.npy", mmap_mode="r")
        self.mels = np.load(self.path / "mels.npy", mmap_mode="r")
        sk = self.path / "skipped.csv"
        self.skipped = pd.read_csv(sk, dtype=str, keep_default_na=False) if sk.exists() \
            else pd.DataFrame(columns=["path", "reason", "detail"])
        self._validate()

    def _validate(self) -> None:
        c, n = self.data_config, len(self.manifest)
        want_f = (n, c.n_frames, 3, c.image_size, c.image_size)
        want_m = (n, c.n_mels, c.mel_frames)
        if self.frames.shape != want_f or self.frames.dtype != np.uint8:
            raise ValueError(f"{self.path}/frames.npy is {self.frames.dtype}{self.frames.shape}, "
                             f"expected uint8{want_f}: re-run pack()")
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

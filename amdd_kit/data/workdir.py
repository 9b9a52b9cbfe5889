"""The ``STORE/_work/`` folder: per-video results of preprocessing, and the store's config guard.

This is the only module that reads or writes ``_work/``: :mod:`~amdd_kit.data.preprocess`
(which fills it) and :mod:`~amdd_kit.data.store` (which packs it) both call it, and neither
imports the other for it::

    _work/videos.parquet    the adapter manifest + video_id (what the store should hold)
    _work/problems.csv      the adapter's problem rows (path, reason, detail)
    _work/source.json       {"dataset", "root"}
    _work/<vid>.npz         a finished video: mels float16 [K,n_mels,S], starts [K], info (JSON);
                            raw codec: frames uint8 [K,T,3,H,W];
                            png/jpeg: frames_enc uint8 [sum of sizes] + frame_sizes int64 [K*T]
    _work/<vid>.skip.json   a video without clips: {"reason", "detail"}

Every file is written to a temporary name and renamed into place (atomic). With an encoded
codec, ``<vid>.npz`` only lives until its record is appended to a shard
(:mod:`~amdd_kit.data.shards`): then it is deleted.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig

#: DataConfig fields added after stores were first written, with the value that reproduces the
#: older stores: a ``data_config.json`` without the field is read as having this value.
LEGACY_DEFAULTS: dict[str, Any] = {"frame_codec": "raw", "jpeg_quality": 90,
                                 "jpeg_chroma": "420", "face_search": "full",
                                 "face_detector": "haar"}


def work_dir(out: str | Path) -> Path:
    """``STORE/_work``: where the per-video results of a store live."""
    return Path(out) / "_work"


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` through a temporary file and ``os.replace``."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def remove_stale_temporaries(work: str | Path) -> list[Path]:
    """Delete the temporary files (``.<name>.<pid>.tmp[.npz]``) that a killed process left in
    ``work``; files of a process that is still running are kept. Returns what was removed."""
    removed = []
    for tmp in Path(work).glob(".*.tmp*"):
        parts = tmp.name.split(".")
        pid = next((int(x) for x in reversed(parts) if x.isdigit()), None)
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_data_config(out: str | Path) -> DataConfig:
    """The :class:`DataConfig` of ``out/data_config.json`` (legacy fields filled in)."""
    d = json.loads((Path(out) / "data_config.json").read_text())
    return DataConfig(**{**LEGACY_DEFAULTS, **d})


def check_data_config(out: Path, cfg: DataConfig) -> None:
    """Write ``out/data_config.json``, or refuse when the store was built with another config."""
    out = Path(out)
    path = out / "data_config.json"
    want = dataclasses.asdict(cfg)
    if path.exists():
        have = {**LEGACY_DEFAULTS, **json.loads(path.read_text())}
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if diff:
            raise ValueError(f"{out} was built with a different DataConfig "
                             f"({', '.join(f'{k}: {have.get(k)!r} -> {want.get(k)!r}' for k in diff)}); "
                             "use another --out folder or delete this one")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(want, indent=2, sort_keys=True) + "\n").encode())


def save_sources(work: Path, videos: pd.DataFrame, problems: pd.DataFrame, dataset: str,
                 root: str | Path) -> None:
    """Record what the store should hold: ``videos.parquet`` (the adapter manifest with a
    ``video_id`` column), ``problems.csv`` (the adapter's refused rows) and ``source.json``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".videos.parquet.{os.getpid()}.tmp"
    videos.to_parquet(tmp, index=False)
    os.replace(tmp, work / "videos.parquet")
    atomic_write_bytes(work / "problems.csv", problems.to_csv(index=False).encode())
    atomic_write_bytes(work / "source.json",
                       json.dumps({"dataset": dataset, "root": str(root)}).encode())


def load_sources(work: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``(videos, problems, dataset)`` as :func:`save_sources` wrote them.

    Raises ``FileNotFoundError`` when preprocessing never started in this store."""
    work = Path(work)
    if not (work / "videos.parquet").exists():
        raise FileNotFoundError(f"{work / 'videos.parquet'} not found: run preprocess_dataset "
                                "(or `amdd-kit preprocess`) first")
    videos = pd.read_parquet(work / "videos.parquet")
    problems = pd.read_csv(work / "problems.csv", dtype=str, keep_default_na=False) \
        if (work / "problems.csv").exists() else pd.DataFrame(columns=["path", "reason", "detail"])
    dataset = json.loads((work / "source.json").read_text())["dataset"] \
        if (work / "source.json").exists() else ""
    return videos, problems, dataset


def item_path(work: Path, vid: str) -> Path:
    """``work/<vid>.npz``, the finished work item of video ``vid`` (it may not exist)."""
    return Path(work) / f"{vid}.npz"


def save_work_item(work: Path, vid: str, frames: np.ndarray | None, mels: np.ndarray,
                   starts: np.ndarray, info: dict,
                   frames_enc: list[bytes] | None = None) -> Path:
    """Atomically write ``work/<vid>.npz``: raw ``frames`` uint8 ``[K,T,3,H,W]``, or the
    ``K*T`` encoded frames ``frames_enc`` (clip-major), plus mels ``[K,n_mels,S]`` and starts."""
    work = Path(work)
    tmp = work / f".{vid}.{os.getpid()}.tmp.npz"
    arrays: dict[str, np.ndarray] = {"mels": mels, "starts": starts,
                                     "info": np.array(json.dumps(info))}
    if frames_enc is not None:
        arrays["frames_enc"] = np.frombuffer(b"".join(frames_enc), dtype=np.uint8)
        arrays["frame_sizes"] = np.array([len(b) for b in frames_enc], dtype=np.int64)
    else:
        arrays["frames"] = frames
    np.savez(tmp, **arrays)
    dest = item_path(work, vid)
    os.replace(tmp, dest)
    return dest


def drop_work_item(work: Path, vid: str) -> None:
    """Delete ``work/<vid>.npz`` (once its frames live in a shard); no error when absent."""
    item_path(work, vid).unlink(missing_ok=True)


def save_skip(work: Path, vid: str, reason: str, detail: str) -> None:
    """Atomically write ``work/<vid>.skip.json``."""
    atomic_write_bytes(Path(work) / f"{vid}.skip.json",
                       json.dumps({"reason": reason, "detail": detail}).encode())


def load_work_item(work: Path, vid: str) -> dict[str, Any] | None:
    """One finished work item, or None.

    Returns ``{"frames" | "frames_enc", "mels", "starts", "info"}`` for a video with clips
    (``frames_enc``: list of ``K*T`` encoded frames), or the skip dict ``{"reason", "detail"}``.
    """
    npz = item_path(work, vid)
    if npz.exists():
        with np.load(npz) as z:
            item: dict[str, Any] = {"mels": z["mels"], "starts": z["starts"],
                                    "info": json.loads(str(z["info"]))}
            if "frames_enc" in z.files:
                buf, sizes = z["frames_enc"].tobytes(), z["frame_sizes"]
                ends = np.cumsum(sizes)
                item["frames_enc"] = [buf[e - s:e] for s, e in zip(sizes, ends)]
            else:
                item["frames"] = z["frames"]
        return item
    skip = Path(work) / f"{vid}.skip.json"
    if skip.exists():
        return json.loads(skip.read_text())
    return None


def n_clips(work: Path, vid: str) -> int | None:
    """Clips in ``work/<vid>.npz`` (None when there is no such file)."""
    npz = item_path(work, vid)
    if not npz.exists():
        return None
    with np.load(npz) as z:
        return int(z["starts"].shape[0])


def is_done(work: Path, vid: str, packed: set[str] | dict | None = None) -> bool:
    """Whether video ``vid`` needs no more processing: a finished work item, a record in the
    shards (``packed``), or a final skip (skips with reason ``error`` are retried)."""
    if packed is not None and vid in packed:
        return True
    if item_path(work, vid).exists():
        return True
    skip = Path(work) / f"{vid}.skip.json"
    if skip.exists():
        try:
            return json.loads(skip.read_text()).get("reason") != "error"
        except (json.JSONDecodeError, OSError):
            return False
    return False


__all__ = ["LEGACY_DEFAULTS", "work_dir", "atomic_write_bytes", "read_data_config",
           "check_data_config", "save_sources", "load_sources", "item_path", "save_work_item",
           "drop_work_item", "save_skip", "load_work_item", "n_clips", "is_done"]

"""The ``STORE/_work/`` folder: per-video results of preprocessing, and the store's config guard.

The write path of a store runs one way, each module calling only the ones below it::

    preprocess  (the driver)  ->  workdir  ->  shards
    preprocess  -> store.pack ->  workdir  ->  shards

This is the only module that reads or writes ``_work/``. Workers call :func:`save_work_item` and
:func:`save_skip`; the one process that drives them (or packs the store) opens a
:class:`WorkDir`, which also moves finished encoded videos into the shards
(:mod:`~amdd_kit.data.shards`)::

    _work/videos.parquet    the adapter manifest + video_id (what the store should hold)
    _work/problems.csv      the adapter's problem rows (path, reason, detail)
    _work/source.json       {"dataset", "root"}
    _work/<vid>.npz         a finished video: mels float16 [K,n_mels,S], starts [K], info (JSON);
                            raw codec: frames uint8 [K,T,3,H,W];
                            png/jpeg: frames_enc uint8 [sum of sizes] + frame_sizes int64 [K*T]
    _work/<vid>.skip.json   a video without clips: {"reason", "detail"}

Every file is written to a temporary name and renamed into place (atomic). With an encoded
codec, ``<vid>.npz`` only lives until :meth:`WorkDir.settle` has appended it to a shard as one
record: then it is deleted.
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
from . import shards

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
    path = Path(out) / "data_config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {out} is not a clip store yet; run "
                                "preprocess_dataset (or `amdd-kit preprocess`) first")
    d = json.loads(path.read_text())
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


def _item(work: Path, vid: str) -> Path:
    return Path(work) / f"{vid}.npz"


def _skip(work: Path, vid: str) -> Path:
    return Path(work) / f"{vid}.skip.json"


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
    dest = _item(work, vid)
    os.replace(tmp, dest)
    return dest


def save_skip(work: Path, vid: str, reason: str, detail: str) -> None:
    """Atomically write ``work/<vid>.skip.json``."""
    atomic_write_bytes(_skip(work, vid), json.dumps({"reason": reason, "detail": detail}).encode())


class WorkDir:
    """The ``_work/`` folder of the store at ``out``, opened by the one process that fills or
    packs it (workers only call :func:`save_work_item` and :func:`save_skip`).

    Opening it checks ``out/data_config.json`` against ``cfg`` (writing it for a new store;
    ``cfg=None`` reads it) and, with an encoded ``frame_codec``, opens the store's shards
    (:class:`~.shards.ShardWriter`, which cuts off a torn tail). Attributes: ``out``, ``path`` (``out/_work``), ``cfg``,
    ``shards`` (the writer, or None for raw frames).
    """

    def __init__(self, out: str | Path, cfg: DataConfig | None = None):
        self.out, self.path = Path(out), work_dir(out)
        self.cfg = read_data_config(out) if cfg is None else cfg
        check_data_config(self.out, self.cfg)
        self.shards = shards.ShardWriter(self.out) if self.cfg.frame_codec != "raw" else None

    def save_sources(self, videos: pd.DataFrame, problems: pd.DataFrame, dataset: str,
                     root: str | Path) -> None:
        """Record what the store should hold: ``videos.parquet`` (the adapter manifest with a
        ``video_id`` column), ``problems.csv`` (the adapter's refused rows), ``source.json``."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".videos.parquet.{os.getpid()}.tmp"
        videos.to_parquet(tmp, index=False)
        os.replace(tmp, self.path / "videos.parquet")
        atomic_write_bytes(self.path / "problems.csv", problems.to_csv(index=False).encode())
        atomic_write_bytes(self.path / "source.json",
                           json.dumps({"dataset": dataset, "root": str(root)}).encode())

    def sources(self) -> tuple[pd.DataFrame, pd.DataFrame, str]:
        """``(videos, problems, dataset)`` as :meth:`save_sources` wrote them.

        Raises ``FileNotFoundError`` when preprocessing never started in this store."""
        work = self.path
        if not (work / "videos.parquet").exists():
            raise FileNotFoundError(f"{work / 'videos.parquet'} not found: run preprocess_dataset "
                                    "(or `amdd-kit preprocess`) first")
        videos = pd.read_parquet(work / "videos.parquet")
        problems = pd.read_csv(work / "problems.csv", dtype=str, keep_default_na=False) \
            if (work / "problems.csv").exists() \
            else pd.DataFrame(columns=["path", "reason", "detail"])
        dataset = json.loads((work / "source.json").read_text())["dataset"] \
            if (work / "source.json").exists() else ""
        return videos, problems, dataset

    def is_done(self, vid: str) -> bool:
        """Whether video ``vid`` needs no more processing: a finished work item, a record in the
        shards, or a final skip (skips with reason ``error`` are retried)."""
        if (self.shards is not None and vid in self.shards) or _item(self.path, vid).exists():
            return True
        skip = _skip(self.path, vid)
        if skip.exists():
            try:
                return json.loads(skip.read_text()).get("reason") != "error"
            except (json.JSONDecodeError, OSError):
                return False
        return False

    def settle(self, vid: str) -> bool:
        """Encoded codec: move the finished work item ``<vid>.npz`` into the shards (one record),
        then delete it; raw: nothing to do. Returns whether the video is in the shards.

        Safe at every point against ``kill -9``: the record is complete on disk (fsync) before
        the work item goes; a torn record is cut off by the next ``ShardWriter``, and a video
        found in both places is taken from the shard."""
        if self.shards is None:
            return False
        item = _item(self.path, vid)
        if vid not in self.shards:
            if not item.exists():
                return False
            with np.load(item) as z:
                if "frames_enc" not in z.files:
                    raise ValueError(f"{item} holds raw frames, but the store uses an encoded "
                                     "frame codec")
                buf, ends = z["frames_enc"].tobytes(), np.cumsum(z["frame_sizes"])
                self.shards.append(vid, [buf[b:e] for b, e in zip(ends - z["frame_sizes"], ends)],
                                   z["mels"], z["starts"], json.loads(str(z["info"])))
        item.unlink(missing_ok=True)
        return True

    def n_clips(self, vid: str) -> int | None:
        """Clips of a finished video (None when it has none yet, or was skipped); an encoded
        video is settled into the shards first."""
        if self.settle(vid):
            return int(self.shards.records[vid].header["n_clips"])
        item = _item(self.path, vid)
        if self.shards is not None or not item.exists():
            return None
        with np.load(item) as z:
            return int(z["starts"].shape[0])

    def skip(self, vid: str) -> dict[str, str]:
        """The skip record ``{"reason", "detail"}`` of a video without clips (reason ``pending``
        when it has no result yet)."""
        skip = _skip(self.path, vid)
        if skip.exists():
            return json.loads(skip.read_text())
        return {"reason": "pending", "detail": "not processed yet: re-run preprocess"}

    def clips(self, vid: str) -> dict[str, np.ndarray]:
        """The clips of a finished video: ``mels`` float16 ``[K,n_mels,S]``, ``starts`` ``[K]``
        and either ``frames`` uint8 ``[K,T,3,H,W]`` (raw) or ``index`` int64 ``[K,T,3]``
        (encoded: shard, byte offset, size of each frame in the shards)."""
        if self.shards is None:
            with np.load(_item(self.path, vid)) as z:
                return {"mels": z["mels"], "starts": z["starts"], "frames": z["frames"]}
        return shards.read_clips(self.out, self.shards.records[vid])


__all__ = ["LEGACY_DEFAULTS", "work_dir", "atomic_write_bytes", "remove_stale_temporaries",
           "read_data_config", "check_data_config", "save_work_item", "save_skip", "WorkDir"]

"""Preprocessing a dataset: adapter manifest -> one worker call per video -> packed clip store.

This module drives the work and owns no format:

* the adapter (:mod:`~amdd_kit.data.adapters`) lists the videos;
* each video is decoded into clips by :func:`amdd_kit.data.decode.clips_from_video`, in a
  process pool (``forkserver``, one thread per worker; a crashing worker costs one video);
* its result is written to ``STORE/_work/`` by :mod:`~amdd_kit.data.workdir` (atomic, so an
  interrupted run resumes where it stopped), whose :class:`~amdd_kit.data.workdir.WorkDir`
  moves an encoded video into the store's shards as soon as it is done;
* :func:`amdd_kit.data.store.pack` packs ``_work/`` (and the shards of an encoded store) into
  the files loaders memory-map.

The write path runs one way: ``preprocess -> workdir -> shards``, then
``preprocess -> store.pack -> workdir -> shards``; no module below calls back up.

One bad file never stops the dataset: it becomes a skip record with a reason from
:data:`~amdd_kit.data.video.SKIP_REASONS`.
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import dataclasses
import hashlib
import logging
import multiprocessing as mp
import sys
import time
from pathlib import Path

import cv2
import torch
from tqdm.auto import tqdm

from ..config import DataConfig
from .adapters import read_dataset
from .codec import check_codec, encode_frames
from .decode import clips_from_video
from .faces import face_detector
from .store import StoreSummary, pack
from .video import SkipVideo
from .workdir import WorkDir, remove_stale_temporaries, save_skip, save_work_item

log = logging.getLogger(__name__)


def video_id(dataset: str, path: str) -> str:
    """Stable id of a source video: 16 hex digits of sha1(``dataset/path``)."""
    return hashlib.sha1(f"{dataset}/{path}".encode()).hexdigest()[:16]


def process_one(vid: str, video: str, audio: str | None, cfg_dict: dict, work: str) -> tuple:
    """Worker: preprocess one video into ``work/<vid>.npz`` or ``work/<vid>.skip.json``.

    With ``frame_codec`` png/jpeg the frames are encoded here, in the worker (see
    :mod:`amdd_kit.data.workdir` for the file format). Never raises: any exception becomes a
    skip record (reason ``error`` with the message). Returns ``(vid, n_clips, reason, detail)``.
    """
    cfg = DataConfig(**cfg_dict)
    dest = Path(work)
    try:
        clips = clips_from_video(video, cfg, audio)
        if cfg.frame_codec == "raw":
            save_work_item(dest, vid, clips.frames, clips.mels, clips.starts, clips.info)
        else:
            enc = encode_frames(clips.frames, cfg.frame_codec, cfg.jpeg_quality, cfg.jpeg_chroma)
            save_work_item(dest, vid, None, clips.mels, clips.starts, clips.info,
                           frames_enc=enc)
        return vid, len(clips), "", ""
    except SkipVideo as e:
        reason, detail = e.reason, e.detail
    except Exception as e:  # noqa: BLE001 -- one bad file must never stop the dataset
        reason, detail = "error", f"{type(e).__name__}: {e}"
    save_skip(dest, vid, reason, detail)
    return vid, 0, reason, detail


def _worker_init() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def preprocess_dataset(dataset: str, root: str | Path, out: str | Path, cfg: DataConfig,
                       workers: int = 1, progress: bool = True, limit: int | None = None,
                       keep_pool: bool = False) -> StoreSummary:
    """Adapter -> per-video clips (atomic, resumable) -> packed clip store.

    Args:
        dataset: ``fakeavceleb|lavdf|dftimit|dfdm|csv`` (see :mod:`amdd_kit.data.adapters`).
        root: the dataset folder.
        out: the clip store folder (see :func:`amdd_kit.data.store.store_dir`).
        cfg: the :class:`DataConfig`; must match the one an existing ``out`` was built with.
        workers: processes (``1`` = in this process). Workers start with the ``forkserver``
            method (safe with torch threads and in Jupyter) and use one thread each.
        keep_pool: keep the worker processes alive for the next call with the same
            ``workers`` (a script that preprocesses several datasets pays the worker start
            once; :func:`close_pools` ends them, as does the interpreter's exit). Off by
            default: a live pool's threads make a later plain ``fork`` (e.g. a DataLoader's
            workers) risky.
        progress: show a tqdm progress bar.
        limit: only the first ``limit`` videos of the manifest.

    Each video's result lands in ``out/_work/<video_id>.npz`` (or ``.skip.json``, see
    :mod:`amdd_kit.data.workdir`) through a temporary file + ``os.replace``, so an interrupted
    run resumes where it stopped: finished videos are not redone (skips with reason ``error``
    are retried). With ``frame_codec`` png/jpeg, each finished video is moved at once into the
    store's shard files (:meth:`amdd_kit.data.workdir.WorkDir.settle`), so the disk holds one
    copy of the frames. Then
    :func:`amdd_kit.data.store.pack` writes the store.

    Returns:
        :class:`amdd_kit.data.store.StoreSummary` (videos, clips, skipped by reason, seconds).
    """
    t_start = time.perf_counter()
    out = Path(out)
    check_codec(cfg.frame_codec, cfg.jpeg_quality, cfg.jpeg_chroma)
    face_detector(cfg.face_detector)  # an unknown or uninstalled detector: one clear error here
    res = read_dataset(dataset, root)
    work = WorkDir(out, cfg)            # config guard; encoded codec: the shards, torn tail cut
    remove_stale_temporaries(work.path)  # half-written files of a killed earlier run
    man = res.manifest.copy()
    if limit is not None:
        man = man.iloc[: int(limit)].copy()
    man.insert(0, "video_id", [video_id(dataset, p) for p in man["path"]])
    work.save_sources(man, res.problems, dataset, res.root)

    cfg_dict = dataclasses.asdict(cfg)
    todo = [(r.video_id, str(res.root / r.path),
             str(res.root / r.audio_path) if r.audio_path else None)
            for r in man.itertuples() if not work.is_done(r.video_id)]
    log.info("%s: %d videos, %d to process, %d already done", dataset, len(man), len(todo),
             len(man) - len(todo))
    bar = tqdm(total=len(todo), desc=f"preprocess {dataset}", disable=not progress,
               unit="video")

    def done(result: tuple) -> None:
        _report(result, bar)
        if result[1]:
            work.settle(result[0])

    try:
        if workers <= 1 or len(todo) <= 1:
            threads = torch.get_num_threads(), cv2.getNumThreads()
            _worker_init()  # tiny per-video tensors: threads only add overhead
            try:
                for vid, video, audio in todo:
                    done(process_one(vid, video, audio, cfg_dict, str(work.path)))
            finally:
                torch.set_num_threads(threads[0])
                cv2.setNumThreads(threads[1])
        else:
            _run_pool(todo, cfg_dict, work, workers, done, keep_pool)
    finally:
        bar.close()
    summary = pack(out, cfg)
    summary.processed = len(todo)
    summary.seconds = round(time.perf_counter() - t_start, 2)
    return summary


def _report(result: tuple, bar) -> None:
    vid, n, reason, detail = result
    if reason:
        log.info("skip %s: %s %s", vid, reason, detail)
    bar.update(1)


_WARM: dict[int, cf.ProcessPoolExecutor] = {}


def _pool(workers: int, warm: bool = False) -> cf.ProcessPoolExecutor:
    """A process pool of ``workers`` one-thread workers that have imported this module.

    ``warm=True`` returns the pool kept from an earlier call with the same size (workers stay
    alive between ``preprocess_dataset`` calls of one Python process: a notebook or a script
    that preprocesses several datasets pays the worker start once); see :func:`close_pools`.
    """
    if warm:
        ex = _WARM.get(workers)
        if ex is not None and not getattr(ex, "_broken", False):
            return ex
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["amdd_kit.data.preprocess"])
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
    if warm:
        _WARM[workers] = ex
    return ex


def close_pools() -> None:
    """Shut down the warm worker pools (also done at interpreter exit)."""
    while _WARM:
        _WARM.popitem()[1].shutdown(wait=True, cancel_futures=True)


atexit.register(close_pools)


def _run_pool(todo: list[tuple], cfg_dict: dict, work: WorkDir, workers: int, done,
              keep_pool: bool = False) -> None:
    """Run ``process_one`` over ``todo`` in a process pool; ``done(result)`` for each video, in
    this process. Survives crashing workers.

    A worker that dies (e.g. a decoder segfault) breaks the pool; the unfinished videos are then
    retried one per fresh single-process pool, and a video that crashes again gets an ``error``
    skip record.
    """
    pending = {t[0]: t for t in todo}
    ex = _pool(workers, warm=keep_pool)
    futs = [ex.submit(process_one, v, a, b, cfg_dict, str(work.path)) for v, a, b in todo]
    try:
        for f in cf.as_completed(futs):
            result = f.result()
            pending.pop(result[0], None)
            done(result)
    except cf.process.BrokenProcessPool:
        log.warning("a worker process died; retrying %d videos one by one", len(pending))
        _WARM.pop(workers, None)
        ex.shutdown(wait=True)
    except BaseException:  # KeyboardInterrupt: do not leave queued videos running
        for f in futs:
            f.cancel()
        raise
    finally:
        if not keep_pool:
            ex.shutdown(wait=True)
    for vid, video, audio in pending.values():  # empty unless the pool broke
        if work.is_done(vid):
            done((vid, work.n_clips(vid) or 0, "", ""))
            continue
        with _pool(1) as ex:
            try:
                done(ex.submit(process_one, vid, video, audio, cfg_dict, str(work.path)).result())
            except cf.process.BrokenProcessPool:
                save_skip(work.path, vid, "error", "the worker process crashed on this file")
                done((vid, 0, "error", "the worker process crashed on this file"))


__all__ = ["preprocess_dataset", "process_one", "video_id", "close_pools"]

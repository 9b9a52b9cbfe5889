#!/usr/bin/env python
"""Clip-store size and read speed: bytes per clip (tiny and paper), projected dataset sizes,
and DataLoader clips/s with 1, 2 and 4 workers.

    python benchmarks/bench_store.py [--data DIR] [--limit N] [--seconds S]

``--data`` holds a synthetic corpus with a ``fakeavceleb/`` folder (made when missing:
``standard`` size with ``--identities`` identities, only the FakeAVCeleb layout: the
standard corpus renders 224 px faces, like the real datasets, so JPEG sizes are meaningful).
The first ``--limit`` videos are preprocessed at ``tiny`` (its codec: raw) and at ``paper``
with each codec (raw, png, and the paper's own: JPEG), into a temporary folder.

Projected sizes = bytes per clip (frames on disk + mels + index) x the config's
``clips_per_video`` x the dataset's video count (FakeAVCeleb 21,566; LAV-DF 136,304;
AV-Deepfake1M 1,146,760), in GB (1e9 bytes). Synthetic faces are smoother than camera footage,
so real JPEG sizes will be somewhat higher; the figure is an estimate, not a measurement.

Loader clips/s: a plain ``torch.utils.data.DataLoader`` over :class:`amdd_kit.loaders.ClipDataset`
(what fastai's DataLoader wraps), batch 32, shuffled, decoding on the CPU in the workers, after
one warm-up pass; ``per worker`` = clips/s divided by the workers. On a machine with fewer
cores than workers the figure cannot scale: the core count is printed beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from amdd_kit.config import get_config  # noqa: E402
from amdd_kit.data import shards  # noqa: E402
from amdd_kit.data.codec import codec_label  # noqa: E402
from amdd_kit.data.preprocess import preprocess_dataset  # noqa: E402
from amdd_kit.data.store import ClipStore  # noqa: E402

DATASETS = {"FakeAVCeleb": 21_566, "LAV-DF": 136_304, "AV-Deepfake1M": 1_146_760}
GPU_STEP_CLIPS_S = 170  # ResNet50, T=16, 224 px, one H100-class GPU (issue 13's estimate)


def store_bytes(path: Path) -> dict[str, int]:
    """Bytes on disk of a packed store, by part."""
    frames = sum(p.stat().st_size for p in shards.shard_paths(path))
    if (path / "frames.npy").exists():
        frames += (path / "frames.npy").stat().st_size
    idx = path / "frames_index.npy"
    return {"frames": frames, "mels": (path / "mels.npy").stat().st_size,
            "index": idx.stat().st_size if idx.exists() else 0,
            "manifest": (path / "manifest.parquet").stat().st_size}


def loader_rate(store: ClipStore, workers: int, seconds: float, batch: int = 32) -> float:
    """Clips/s of a DataLoader over the whole store (shuffled, ``workers`` processes)."""
    import torch

    from amdd_kit.loaders import ClipDataset
    ds = ClipDataset(store, np.arange(len(store)))
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                     persistent_workers=workers > 0, drop_last=True,
                                     multiprocessing_context="forkserver" if workers else None)
    for _ in dl:  # warm-up pass: worker start, page cache
        pass
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for fb, *_ in dl:
            n += fb.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=".cache/bench/standard16")
    ap.add_argument("--identities", type=int, default=16)
    ap.add_argument("--limit", type=int, default=40, help="videos per store (0 = all)")
    ap.add_argument("--seconds", type=float, default=6.0, help="per loader measurement")
    ap.add_argument("--workers", default="1,2,4")
    a = ap.parse_args()
    root = Path(a.data) / "fakeavceleb"
    if not (Path(a.data) / ".complete.json").exists():
        from amdd_kit.data.synthetic import make_corpus
        print(f"making a standard synthetic corpus ({a.identities} identities) in {a.data} ...",
              flush=True)
        make_corpus(a.data, size="standard", seed=0, n_identities=a.identities,
                    layouts=("fakeavceleb",), workers=2, progress=False)
    limit = a.limit or None
    cores = len(os.sched_getaffinity(0))
    out: dict = {"corpus": str(a.data), "videos": limit, "cores": cores, "per_clip": {},
                 "projected_gb": {}, "loader": {}}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("tiny", None), ("paper", "raw"), ("paper", "png"), ("paper", None)]
        stores = {}
        for name, codec in runs:
            cfg = get_config(name).data
            if codec is not None:
                cfg = get_config(name, {"data.frame_codec": codec}).data
            label = f"{name}/{codec_label(cfg.frame_codec, cfg.jpeg_quality, cfg.jpeg_chroma)}"
            path = Path(tmp) / label.replace("/", "-").replace(" ", "-")
            t0 = time.perf_counter()
            s = preprocess_dataset("fakeavceleb", root, path, cfg, workers=1, progress=False,
                                   limit=limit)
            b = store_bytes(path)
            per_clip = sum(b[k] for k in ("frames", "mels", "index")) / max(1, s.clips)
            frame_b = b["frames"] / max(1, s.clips * cfg.n_frames)
            out["per_clip"][label] = {"bytes_per_clip": round(per_clip),
                                      "frame_bytes": round(frame_b), "clips": s.clips,
                                      "preprocess_s": round(time.perf_counter() - t0, 1)}
            print(f"{label:22s} {per_clip / 1e3:9.1f} kB/clip  ({frame_b / 1e3:6.1f} kB per "
                  f"{cfg.image_size} px frame, mels {b['mels'] / max(1, s.clips) / 1e3:.1f} kB; "
                  f"{s.clips} clips of {s.videos} videos)", flush=True)
            stores[(name, codec)] = (path, cfg, per_clip, label)
            if name == "paper" and codec is None:
                for ds, n_vid in DATASETS.items():
                    gb = per_clip * cfg.clips_per_video * n_vid / 1e9
                    out["projected_gb"][ds] = round(gb, 1)
                for label_raw, key in (("raw", ("paper", "raw")), ("png", ("paper", "png"))):
                    pc = stores[key][2]
                    out["projected_gb"][f"FakeAVCeleb ({label_raw})"] = round(
                        pc * cfg.clips_per_video * DATASETS["FakeAVCeleb"] / 1e9, 1)
        path, cfg, per_clip, label = stores[("paper", None)]
        cpv = out["per_clip"][label]["clips"] / max(1, s.videos_ok)
        out["clips_per_video_seen"] = round(cpv, 2)
        print(f"projected at paper ({label}, {cfg.clips_per_video} clips per video, the "
              f"config's maximum; this corpus gave {cpv:.2f}): " +
              ", ".join(f"{k} {v:.1f} GB" for k, v in out["projected_gb"].items()) +
              f"  (goal: FakeAVCeleb < 15 GB: "
              f"{'met' if out['projected_gb']['FakeAVCeleb'] < 15 else 'NOT met'})", flush=True)

        st = ClipStore(path)
        t0 = time.perf_counter()
        n = min(len(st), 64)
        for i in range(n):
            st.frames[i]
        dec = n / (time.perf_counter() - t0)
        print(f"decode in this process (OpenCV, 1 thread of {cores} cores): {dec:.0f} clips/s "
              f"of {cfg.n_frames} frames", flush=True)
        out["decode_clips_per_s"] = round(dec, 1)
        for w in (int(x) for x in a.workers.split(",")):
            r = loader_rate(st, w, a.seconds)
            out["loader"][w] = {"clips_per_s": round(r, 1), "per_worker": round(r / w, 1)}
            print(f"loader {label}, {w} worker(s): {r:7.1f} clips/s = {r / w:6.1f} per worker "
                  f"(GPU step ~{GPU_STEP_CLIPS_S} clips/s; {cores} cores here)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

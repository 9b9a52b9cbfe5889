"""Training throughput: fastai Learner vs a plain PyTorch loop (and, on CUDA, raw ResNet50).

Prints clips/s for
  (a) the fastai Learner (our DataLoaders, batch transforms, combined loss, callbacks, metrics),
  (b) a plain PyTorch loop over the same model, data, transforms and loss, and a/b (goal >= 0.9);
  (c) on CUDA only: raw torchvision ResNet50 forward+backward at the same T and resolution in
      bf16 channels_last, and a/c (goal >= 0.7).
The clips are random arrays in a temporary clip store of the config's shape: speed does not
depend on content.

    python benchmarks/bench_train.py --config tiny --clips 96
    python benchmarks/bench_train.py --config paper --clips 256   # on a GPU
    python benchmarks/bench_train.py --config tiny --threads-table  # CPU: alone and beside a busy process

``--threads-table`` measures (a) alone and beside one busy process (a pure-Python loop pinned to
one core: a browser, a second notebook) for several CPU settings -- torch threads and
``OMP_WAIT_POLICY`` (OpenMP threads that spin while they wait, or sleep) -- each in a fresh
process, since OpenMP reads its settings once at start. The kit's default is the first line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback

from amdd_kit.config import METHODS, get_config
from amdd_kit.loaders import AVAugment, ClipDataset, NormalizeFrames, ToFloat
from amdd_kit.precision import autocast_for
from amdd_kit.train import build_learner


def fake_store(root: Path, cfg, n: int, seed: int = 0) -> SimpleNamespace:
    """A clip store with random content, laid out exactly like a real one."""
    rng = np.random.default_rng(seed)
    d = cfg.data
    raw = dataclasses.replace(d, frame_codec="raw")  # frames.npy below, whatever the config says
    (root / "data_config.json").write_text(json.dumps(dataclasses.asdict(raw)))
    frames = np.lib.format.open_memmap(root / "frames.npy", "w+", np.uint8,
                                       (n, d.n_frames, 3, d.image_size, d.image_size))
    for s in range(0, n, 64):
        frames[s:s + 64] = rng.integers(0, 256, frames[s:s + 64].shape, dtype=np.uint8)
    frames.flush()
    np.save(root / "mels.npy", rng.normal(-5, 2, (n, d.n_mels, d.mel_frames)).astype(np.float16))
    methods = np.arange(n) % len(METHODS)
    manifest = pd.DataFrame({"clip_id": np.arange(n), "clip_label": (methods > 0).astype(int),
                             "method_idx": methods, "identity": np.arange(n) // 7})
    return SimpleNamespace(path=root, manifest=manifest)


class TrainTimer(Callback):
    """Wall time of the training batches after ``warmup`` batches (no validation, no setup)."""

    def __init__(self, warmup: int = 2):
        self.warmup = warmup

    def before_train(self):
        self.n_seen, self.clips, self.t0 = 0, 0, None
        self.last, self.waits, self.steps = None, [], []

    def before_batch(self):
        if self.training:
            self.t_batch = time.perf_counter()
            if self.last is not None and self.n_seen >= self.warmup:
                self.waits.append(self.t_batch - self.last)   # time spent waiting on the loader

    def after_batch(self):
        if not self.training:
            return
        if self.learn.dls.device.type == "cuda":
            torch.cuda.synchronize()
        self.last = time.perf_counter()
        if self.n_seen >= self.warmup:
            self.steps.append(self.last - self.t_batch)
        self.n_seen += 1
        if self.n_seen == self.warmup:
            self.t0 = time.perf_counter()
        elif self.n_seen > self.warmup:
            self.clips += len(self.learn.yb[0])

    def after_train(self):
        self.seconds = time.perf_counter() - self.t0 if self.t0 else float("nan")


def bench_fastai(store, cfg, split, tmp: Path) -> float:
    learn = build_learner(store, cfg, split, tmp)
    timer = TrainTimer()
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, cfg.train.lr, cbs=timer)
    bound = sum(w > st for w, st in zip(timer.waits, timer.steps[1:]))
    print(f"    loader-bound steps:  {bound} of {len(timer.waits)} (wait for the batch > compute)")
    t0, n = time.perf_counter(), 0
    for xb in learn.dls.train:
        n += len(xb[-1])
    print(f"    loader alone:        {n / (time.perf_counter() - t0):8.2f} clips/s "
          f"({cfg.train.num_workers} workers)")
    return timer.clips / timer.seconds


def bench_plain(store, cfg, split, device) -> float:
    from amdd_kit.losses import build_loss
    from amdd_kit.models import build_model

    ds = ClipDataset(store, np.flatnonzero(split == "train"))
    dl = torch.utils.data.DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True,
                                     drop_last=True, num_workers=cfg.train.num_workers,
                                     pin_memory=device.type == "cuda")
    tfms = [ToFloat(), AVAugment(time_mask=cfg.train.spec_time_mask,
                                 freq_mask=cfg.train.spec_freq_mask), NormalizeFrames()]
    model = build_model(cfg).to(device).train()
    loss_fn = build_loss(cfg, alpha=0.15)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr,
                            weight_decay=cfg.train.weight_decay)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    clips, t0 = 0, None
    for i, b in enumerate(dl):
        b = tuple(x.to(device, non_blocking=True) for x in b)
        for t in tfms:
            b = t(b)
        frames, mel, label, method = b
        with autocast_for(cfg, device):  # the Learner's arithmetic (fp16 CUDA / bf16 CPU)
            out = model(frames, mel)
            loss = loss_fn(out, label, method)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i == 1:
            t0 = time.perf_counter()
        elif i > 1:
            clips += len(label)
    return clips / (time.perf_counter() - t0)


def bench_raw_resnet50(cfg, device, batches: int = 10) -> float:
    import torchvision
    d = cfg.data
    model = torchvision.models.resnet50().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(cfg.train.batch_size * d.n_frames, 3, d.image_size, d.image_size,
                    device=device).to(memory_format=torch.channels_last)
    for i in range(batches + 2):
        if i == 2:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return batches * cfg.train.batch_size / (time.perf_counter() - t0)


def _busy(core: int) -> None:
    """A process that keeps one core busy (what a browser or a second kernel does)."""
    os.sched_setaffinity(0, {core})
    while True:
        pass


#: CPU settings compared by --threads-table: (label, torch threads or 0 for the default, env)
SETTINGS = (("kit default (OMP_WAIT_POLICY=PASSIVE, 1 thread per core)", 0,
             {"OMP_WAIT_POLICY": "PASSIVE"}),
            ("spinning OpenMP threads (OMP_WAIT_POLICY=ACTIVE, 1 per core)", 0,
             {"OMP_WAIT_POLICY": "ACTIVE"}),
            ("one thread (OMP_NUM_THREADS=1)", 1, {"OMP_NUM_THREADS": "1"}))


def threads_table(args) -> None:
    """Clips/s of the fastai Learner for each of :data:`SETTINGS`, alone and contended."""
    print(f"{'setting':62s} {'alone':>8s} {'busy core':>10s} {'ratio':>6s}")
    for label, threads, env in SETTINGS:
        figs = []
        for busy in (False, True):
            hog = None
            if busy:
                hog = multiprocessing.get_context("spawn").Process(target=_busy, args=(0,),
                                                                   daemon=True)
                hog.start()
            cmd = [sys.executable, __file__, "--config", args.config, "--clips", str(args.clips),
                   "--fastai-only"] + (["--threads", str(threads)] if threads else [])
            full_env = {k: v for k, v in os.environ.items()
                        if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
            r = subprocess.run(cmd, env={**full_env, **env}, capture_output=True, text=True)
            if hog is not None:
                hog.terminate()
                hog.join()
            found = [ln for ln in r.stdout.splitlines() if ln.startswith("(a)")]
            figs.append(float(found[0].split()[3]) if found else float("nan"))
            if not found:
                print(r.stdout[-2000:], r.stderr[-2000:])
        print(f"{label:62s} {figs[0]:8.2f} {figs[1]:10.2f} {figs[0] / figs[1]:5.1f}x")
    print("clips/s of training steps; 'busy core': one other process keeps one core busy "
          "(a fair share of 2 cores would be about 2x slower)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--clips", type=int, default=96, help="training clips per measurement")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: the default)")
    ap.add_argument("--threads-table", action="store_true",
                    help="CPU settings alone and beside a busy process (see above)")
    ap.add_argument("--fastai-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads_table:
        return threads_table(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    over = {"model.pretrained": False}
    if args.batch_size:
        over["train.batch_size"] = args.batch_size
    if args.workers is not None:
        over["train.num_workers"] = args.workers
    cfg = get_config(args.config, over)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    n_valid = cfg.train.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = fake_store(tmp, cfg, args.clips + n_valid)
        split = np.array(["train"] * args.clips + ["valid"] * n_valid)
        print(f"config {cfg.name}: {cfg.model.visual_backbone} visual, T={cfg.data.n_frames}, "
              f"{cfg.data.image_size}px, batch {cfg.train.batch_size}, device {device}, "
              f"torch threads {torch.get_num_threads()}")
        a = bench_fastai(store, cfg, split, tmp)
        print(f"(a) fastai Learner:      {a:8.2f} clips/s")
        if args.fastai_only:
            return
        b = bench_plain(store, cfg, split, device)
        print(f"(b) plain PyTorch loop:  {b:8.2f} clips/s")
        print(f"    ratio a/b:           {a / b:8.2f}   (goal >= 0.9)")
        if device.type == "cuda":
            c = bench_raw_resnet50(cfg, device)
            print(f"(c) raw ResNet50 fwd+bwd bf16 channels_last: {c:8.2f} clips/s")
            print(f"    ratio a/c:           {a / c:8.2f}   (goal >= 0.7)")
            print(f"    GPU memory peak:     {torch.cuda.max_memory_allocated() / 2**30:8.2f} GiB "
                  f"of {torch.cuda.get_device_properties(0).total_memory / 2**30:.1f}")
        else:
            print("(c) raw ResNet50 bf16 figure needs CUDA: not measured on this machine")


if __name__ == "__main__":
    main()

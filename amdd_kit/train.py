"""Training with fastai: Learner factory, callbacks, and the run directory.

``train(store, cfg, run_dir)`` is what notebook 03 and ``amdd-kit train`` call. It writes the run
directory of DESIGN.md: ``config.json``, ``splits.csv``, ``model.pth`` (state dict of the best
epoch by validation loss), ``history.csv`` (fastai's CSVLogger), ``loss_components.csv`` (each
loss term per epoch), ``metrics.json`` and ``embeddings.parquet`` (the test split).
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
from fastai.callback.core import Callback, CancelFitException
from fastai.callback.progress import CSVLogger
from fastai.callback.tracker import SaveModelCallback
from fastai.learner import Learner
from fastai.optimizer import Adam
from fastai.torch_core import set_seed

from .config import Config
from .inference import embed_store
from .jsonio import write_json
from .loaders import make_dataloaders
from .metrics import fastai_metrics, summarise


class LossComponents(Callback):
    """Records every loss term (``loss_func.last``) per training batch and averages per epoch.

    After fitting, ``learn.loss_components`` is a DataFrame: one row per epoch, one column per
    term (``det, attr, con, cmffc, cent, total`` and CAD's ``kl, distill``).
    """

    order = 60

    def before_fit(self):
        self.rows: list[dict] = []
        self.learn.loss_components = pd.DataFrame()

    def before_epoch(self):
        self.sums: dict[str, float] = {}
        self.n = 0

    def after_loss(self):
        if not self.training:
            return
        for k, v in getattr(self.learn.loss_func, "last", {}).items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.n += 1

    def after_epoch(self):
        if self.n:
            self.rows.append({"epoch": self.epoch, **{k: v / self.n for k, v in self.sums.items()}})
            self.learn.loss_components = pd.DataFrame(self.rows)


class NaNGuard(Callback):
    """Stops training with a clear message as soon as the loss is NaN or infinite."""

    order = 61

    def after_loss(self):
        if not torch.isfinite(self.learn.loss).all():
            terms = {k: v for k, v in getattr(self.learn.loss_func, "last", {}).items()}
            self.learn.nan_message = (
                f"training stopped: the loss became {float(self.learn.loss)} at epoch "
                f"{self.epoch}, iteration {self.iter} (terms: {terms}). Lower the learning "
                f"rate (train.lr), check the inputs, or set the diverging term's weight to 0.")
            raise CancelFitException()


def class_balanced_alpha(labels: np.ndarray) -> float:
    """Focal-loss alpha for the fake class: the share of real clips in the training split,
    so that each class contributes equally (Lin et al. 2017's alpha, class-balanced)."""
    labels = np.asarray(labels)
    return float((labels == 0).mean()) if len(labels) else 0.5


def build_learner(store, cfg: Config, split, run_dir: Path, device=None) -> Learner:
    """DataLoaders + model + combined loss + metrics + callbacks, as one fastai Learner."""
    from .losses import build_loss
    from .models import build_model

    dls = make_dataloaders(store, cfg, split, device=device)
    train_labels = store.manifest["clip_label"].to_numpy()[np.asarray(split) == "train"]
    alpha = cfg.loss.focal_alpha if cfg.loss.focal_alpha is not None \
        else class_balanced_alpha(train_labels)
    model = build_model(cfg)
    learn = Learner(
        dls, model, loss_func=build_loss(cfg, alpha=alpha),
        opt_func=partial(Adam, decouple_wd=True),  # AdamW
        wd=cfg.train.weight_decay, metrics=fastai_metrics(),
        path=run_dir, model_dir="checkpoints",
        cbs=[LossComponents(), NaNGuard(), CSVLogger(fname="history.csv")],
    )
    if dls.device.type == "cuda" and cfg.train.fp16:
        learn.to_fp16()  # mixed precision; fastai disables it by itself on the CPU
    return learn


def prepare_run(store, cfg: Config, run_dir: str | Path) -> np.ndarray:
    """Seed everything, save ``config.json`` and the identity-disjoint ``splits.csv``.

    Returns the split, one of ``"train"|"valid"|"test"`` per store clip. Methods in
    ``cfg.train.holdout_methods`` never reach train/valid (unseen-generator protocol).
    """
    from .data.splits import identity_split

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    set_seed(cfg.train.seed, reproducible=True)
    cfg.to_json(run_dir / "config.json")
    (run_dir / "store.txt").write_text(str(Path(store.path).resolve()) + "\n")
    m = store.manifest
    split = np.asarray(identity_split(m, cfg.train.valid_frac, cfg.train.test_frac,
                                      cfg.train.split_seed,
                                      holdout_methods=cfg.train.holdout_methods))
    pd.DataFrame({"clip_id": m["clip_id"], "split": split}).to_csv(run_dir / "splits.csv",
                                                                     index=False)
    return split


def fit(learn: Learner, cfg: Config, progress: bool = True) -> float:
    """``fit_one_cycle`` for ``cfg.train.epochs``, keeping the best epoch by validation loss.

    Returns the training time in seconds. Raises RuntimeError (with the NaN guard's message)
    when the loss diverged.
    """
    start = time.time()
    with (nullcontext() if progress else learn.no_bar()):
        learn.fit_one_cycle(cfg.train.epochs, cfg.train.lr,
                            cbs=SaveModelCallback(monitor="valid_loss", fname="best"))
    if getattr(learn, "nan_message", None):
        raise RuntimeError(learn.nan_message)
    return time.time() - start


def finish_run(learn: Learner, store, cfg: Config, split, run_dir: str | Path,
               train_seconds: float | None = None) -> dict:
    """Save the weights (state dict), loss components, test embeddings and ``metrics.json``."""
    run_dir = Path(run_dir)
    split = np.asarray(split)
    model = learn.model.float().eval()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
               run_dir / "model.pth")
    learn.loss_components.to_csv(run_dir / "loss_components.csv", index=False)
    df = embed_store(model, store, cfg, indices=np.flatnonzero(split == "test"), split=split)
    df.to_parquet(run_dir / "embeddings.parquet", index=False)
    metrics = summarise(df, holdout_methods=cfg.train.holdout_methods)
    metrics.update({
        "config": cfg.name, "arch": cfg.model.arch, "epochs": cfg.train.epochs,
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "n_train": int((split == "train").sum()), "n_valid": int((split == "valid").sum()),
        "pretrained": bool(cfg.model.pretrained), "device": str(learn.dls.device),
    })
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def train(store, cfg: Config, run_dir: str | Path, device=None, progress: bool = True) -> Learner:
    """Train AMDD (or CAD, ``cfg.model.arch``) on a clip store and write the run directory:
    :func:`prepare_run` -> :func:`build_learner` -> (``lr_find``) -> :func:`fit` ->
    :func:`finish_run`."""
    split = prepare_run(store, cfg, run_dir)
    learn = build_learner(store, cfg, split, Path(run_dir), device=device)
    if cfg.train.lr_find:
        with (nullcontext() if progress else learn.no_bar()):
            learn.lr_find(show_plot=False)
    seconds = fit(learn, cfg, progress=progress)
    finish_run(learn, store, cfg, split, run_dir, train_seconds=seconds)
    return learn


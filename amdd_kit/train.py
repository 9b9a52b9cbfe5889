"""Training with fastai: Learner factory, callbacks, and the run directory.

``train(store, cfg, run_dir)`` is what notebook 03 and ``amdd-kit train`` call. It writes the run
directory of DESIGN.md: ``config.json``, ``splits.csv``, ``model.pth`` (state dict of the best
epoch by validation loss), ``history.csv`` (fastai's CSVLogger), ``loss_components.csv`` (each
loss term per epoch), ``metrics.json`` and ``embeddings.parquet`` (the test split).

The same code trains on several processes (``amdd-kit train --processes N``, ``torchrun`` or
``accelerate launch``): :func:`fit` runs inside fastai's ``learn.distrib_ctx()``, each process
loads ``batch_size // N`` clips per step, and rank 0 alone writes the run directory. See
:mod:`amdd_kit.distributed` for what matches a one-process run and what cannot.
"""
from __future__ import annotations

import random
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
from fastai.callback.tracker import (SaveModelCallback, TerminateOnNaNCallback,
                                     TrackerCallback)
from fastai.learner import Learner
from fastai.distributed import teardown_distrib
from fastai.optimizer import Adam
from fastai.torch_core import maybe_gather, rank_distrib, set_seed
from fastcore.basics import noop

from .config import Config
from .distributed import (average_bn_statistics, ddp_kwargs, is_main, per_process_batch,
                          process_device, world_size)
from .inference import embed_store
from .jsonio import write_json
from .loaders import make_dataloaders
from .metrics import fastai_metrics, summarise
from .precision import autocast_for, precision_callbacks


class LossComponents(Callback):
    """Records every loss term (``loss_func.last``) per training batch and averages per epoch.

    After fitting, ``learn.loss_components`` is a DataFrame: one row per epoch, one column per
    term (``det, attr, con, cmffc, cent, total`` and CAD's ``kl, distill``). On several
    processes each term is averaged over them (fastai's ``maybe_gather``).
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
        last = getattr(self.learn.loss_func, "last", {})
        if last:  # one gather of all the terms (a no-op on one process)
            vals = maybe_gather(torch.tensor([list(last.values())], device=self.dls.device))
            for k, v in zip(last, vals.mean(0).tolist()):
                self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def after_epoch(self):
        if self.n:
            self.rows.append({"epoch": self.epoch, **{k: v / self.n for k, v in self.sums.items()}})
            self.learn.loss_components = pd.DataFrame(self.rows)


class TerminateOnNaN(TerminateOnNaNCallback):
    """fastai's ``TerminateOnNaNCallback``, with a message that names the loss terms and what
    to try (:func:`fit` raises it as a RuntimeError)."""

    def after_batch(self):
        try:
            super().after_batch()
        except CancelFitException:
            terms = {k: float(v) for k, v in getattr(self.learn.loss_func, "last", {}).items()}
            self.learn.nan_message = (
                f"training stopped: the loss became {float(self.learn.loss.detach())} at epoch "
                f"{self.epoch}, iteration {self.iter} (terms: {terms}). Lower the learning "
                f"rate (train.lr), check the inputs, or set the diverging term's weight to 0.")
            raise


class PreciseBN(Callback):
    """Recompute every BatchNorm layer's population statistics before each validation.

    In training a BatchNorm layer normalises with the batch's own statistics and keeps a running
    average (momentum 0.1) for evaluation. While the weights move fast (the one-cycle peak), that
    average mixes statistics of weights several steps old and no longer matches the current
    network: on the tiny store the validation balanced accuracy fell to 0.50 in mid-training,
    while the same weights with recomputed statistics scored 0.99. Here the statistics are
    recomputed with the weights frozen (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm",
    PreciseBN): ``n_batches`` training batches run forward in training mode, without gradients,
    and each layer keeps the plain average over them (``momentum=None``). Training itself is
    unchanged; evaluation, the saved weights and every later prediction use the recomputed
    statistics. With several processes each recomputes from its own batches and the statistics
    are then pooled (:func:`amdd_kit.distributed.average_bn_statistics`).

    Costs about ``n_batches`` forward passes per epoch (a forward is about a third of a training
    step). Runs only in the validation that follows a training epoch of ``fit`` (not in
    ``validate``, ``get_preds`` or ``lr_find``).
    """

    order = 65  # after fastai's LRFinder (60), which cancels validation while it runs

    def __init__(self, n_batches: int = 8, autocast=nullcontext):
        self.n_batches, self.autocast = n_batches, autocast

    def before_fit(self):
        # fastai sends before_fit to validate() and get_preds() too: only a validation that
        # follows a training epoch (after_train below) recomputes, so scoring saved weights
        # never changes them
        self.bns = [m for m in self.learn.model.modules()
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                    and m.track_running_stats]
        self.pending = False

    def after_train(self):
        self.pending = bool(self.bns) and self.n_batches > 0

    def before_validate(self):
        if not getattr(self, "pending", False):
            return
        self.pending = False
        momenta = [bn.momentum for bn in self.bns]
        for bn in self.bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches below
        model, n_inp = self.learn.model, self.dls.n_inp
        model.train()
        with torch.no_grad():
            for i, batch in enumerate(self.dls.train):
                if i >= self.n_batches:
                    break
                with self.autocast():   # the arithmetic of training (bf16 / fp16 autocast)
                    model(*batch[:n_inp])
        for bn, m in zip(self.bns, momenta):
            bn.momentum = m
        average_bn_statistics(self.bns)   # the same statistics in every process
        model.eval()


class KeepBest(SaveModelCallback):
    """fastai's ``SaveModelCallback`` on the validation loss, without its "Better model found"
    line per epoch: the epoch it keeps (and loads back at the end) is ``learn.best_epoch``."""

    def __init__(self):
        super().__init__(monitor="valid_loss", fname="best")

    def before_fit(self):
        super().before_fit()
        self.learn.best_epoch = None

    def after_epoch(self):
        TrackerCallback.after_epoch(self)   # updates self.best / self.new_best
        if self.new_best:
            self.learn.best_epoch = self.epoch
            self._save(self.fname)


def epoch_table(learn: Learner) -> pd.DataFrame:
    """The epochs of the last ``fit`` as one table: ``train_loss``, ``valid_loss``, the metrics
    (``bal_acc``, ``auc``, ``attr_acc`` on the validation clips) and ``time`` per epoch, the
    kept epoch marked in ``kept``. What fastai's progress bar shows, for output without one."""
    rec = learn.recorder
    names = [n for n in rec.metric_names if n != "epoch"]
    df = pd.DataFrame([list(v) for v in rec.values], columns=names[:len(rec.values[0])]
                      if rec.values else names)
    df.index.name = "epoch"
    df["kept"] = ["*" if i == getattr(learn, "best_epoch", None) else "" for i in df.index]
    return df


def history_line(learn: Learner, metric: str = "bal_acc") -> str:
    """One line for a training: validation ``metric`` per epoch and the kept epoch."""
    df = epoch_table(learn)
    vals = " ".join(f"{v:.2f}" for v in df[metric]) if metric in df.columns else "-"
    return f"valid {metric} by epoch: {vals} (kept epoch {getattr(learn, 'best_epoch', None)})"


def lr_find(learn: Learner, **kwargs):
    """fastai's ``learn.lr_find(**kwargs)``, with the run's ``history.csv`` logger removed while
    it runs: the finder trains for a few batches through the Learner's callbacks and would
    overwrite the history of the run with its own two lines. The model and the optimiser are
    restored by fastai afterwards; :func:`fit` reseeds, so the training that follows is the
    same with or without this call."""
    loggers = [cb for cb in learn.cbs if isinstance(cb, CSVLogger)]
    with learn.removed_cbs(loggers):
        return learn.lr_find(**kwargs)


def class_balanced_alpha(labels: np.ndarray) -> float:
    """Focal-loss alpha for the fake class: the share of real clips in the training split,
    so that each class contributes equally (Lin et al. 2017's alpha, class-balanced)."""
    labels = np.asarray(labels)
    return float((labels == 0).mean()) if len(labels) else 0.5


def build_learner(store, cfg: Config, split, run_dir: Path, device=None) -> Learner:
    """DataLoaders + model + combined loss + metrics + callbacks, as one fastai Learner.

    On ``N`` processes the DataLoaders load ``cfg.train.batch_size // N`` clips per step (the
    configured batch stays the effective one) and only rank 0 logs ``history.csv``.
    """
    from .losses import build_loss
    from .models import build_model

    per_process = cfg.override({"train.batch_size": per_process_batch(cfg.train.batch_size)})
    dls = make_dataloaders(store, per_process, split, device=device)
    train_labels = store.manifest["clip_label"].to_numpy()[np.asarray(split) == "train"]
    alpha = cfg.loss.focal_alpha if cfg.loss.focal_alpha is not None \
        else class_balanced_alpha(train_labels)
    model = build_model(cfg)
    learn = Learner(
        dls, model, loss_func=build_loss(cfg, alpha=alpha),
        opt_func=partial(Adam, decouple_wd=True),  # AdamW
        wd=cfg.train.weight_decay, metrics=fastai_metrics(),
        path=run_dir, model_dir="checkpoints",
        cbs=[LossComponents(), TerminateOnNaN(),
             PreciseBN(cfg.train.precise_bn_batches, partial(autocast_for, cfg, dls.device))]
        + ([CSVLogger(fname="history.csv")] if is_main() else [])
        # float16 autocast + gradient scaling on CUDA, bfloat16 on a CPU that computes it natively
        + precision_callbacks(cfg, dls.device),
    )
    return learn


def prepare_run(store, cfg: Config, run_dir: str | Path) -> np.ndarray:
    """Seed everything, save ``config.json`` and the identity-disjoint ``splits.csv``.

    Returns the split, one of ``"train"|"valid"|"test"`` per store clip. Methods in
    ``cfg.train.holdout_methods`` never reach train/valid (unseen-generator protocol). Every
    process computes the same split; only rank 0 writes the files.
    """
    from .data.splits import identity_split

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    set_seed(cfg.train.seed, reproducible=True)
    m = store.manifest
    split = np.asarray(identity_split(m, cfg.train.valid_frac, cfg.train.test_frac,
                                      cfg.train.split_seed,
                                      holdout_methods=cfg.train.holdout_methods))
    if is_main():
        cfg.to_json(run_dir / "config.json")
        (run_dir / "store.txt").write_text(str(Path(store.path).resolve()) + "\n")
        pd.DataFrame({"clip_id": m["clip_id"], "split": split}).to_csv(run_dir / "splits.csv",
                                                                         index=False)
    return split


def fit(learn: Learner, cfg: Config, progress: bool = True) -> float:
    """``fit_one_cycle`` for ``cfg.train.epochs``, keeping the best epoch by validation loss
    (``learn.best_epoch``; :func:`epoch_table` shows every epoch). Without ``progress``
    nothing is printed.

    The random draws of training restart from ``cfg.train.seed`` here, so cells run between
    :func:`build_learner` and this call (``lr_find``, ``one_batch``) do not change the model.

    Returns the training time in seconds. Raises RuntimeError (with :class:`TerminateOnNaN`'s
    message) when the loss diverged.

    Runs inside fastai's ``learn.distrib_ctx()``: a no-op on one process; launched on several
    (WORLD_SIZE set), DistributedDataParallel with gradients averaged over the processes,
    BatchNorm synchronised on CUDA (SyncBatchNorm has no CPU kernel), and metrics gathered.
    """
    start = time.time()
    cuda = learn.dls.device.type == "cuda"
    logger = learn.logger
    if not progress:   # no bar: fastai's Recorder would print every epoch as a raw list
        learn.logger = noop
    try:
        with learn.distrib_ctx(sync_bn=cuda, cpu=not cuda, kwargs_handlers=ddp_kwargs(cfg)), \
                (nullcontext() if progress else learn.no_bar()):
            # the training draws (shuffling, augmentation, dropout) start from the seed here,
            # whatever ran since the model was built (lr_find, a notebook's one_batch...): the
            # notebook and `amdd-kit train` train alike. Each rank draws its own; the weights
            # start from rank 0's.
            set_seed(cfg.train.seed + rank_distrib(), reproducible=True)
            for dl in learn.dls.loaders:  # fastai's loaders shuffle with their own Random
                dl.rng = random.Random(random.randint(0, 2**32 - 1))
            learn.fit_one_cycle(cfg.train.epochs, cfg.train.lr, cbs=KeepBest())
    except FileNotFoundError:  # diverged in the first epoch: no best checkpoint to load back
        if not getattr(learn, "nan_message", None):
            raise
    finally:
        learn.logger = logger
    if getattr(learn, "nan_message", None):
        raise RuntimeError(learn.nan_message)
    return time.time() - start


def finish_run(learn: Learner, store, cfg: Config, split, run_dir: str | Path,
               train_seconds: float | None = None) -> dict:
    """Save the weights (state dict), loss components, test embeddings and ``metrics.json``.

    ``model.pth`` holds the best epoch's weights (fastai loaded them back at the end of
    :func:`fit`), so fastai's checkpoint of the same weights, ``checkpoints/best.pth`` (88 MB
    for the tiny AMDD), is removed once it is written.
    """
    run_dir = Path(run_dir)
    split = np.asarray(split)
    model = learn.model.float().eval()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
               run_dir / "model.pth")
    checkpoints = Path(learn.path) / learn.model_dir
    (checkpoints / "best.pth").unlink(missing_ok=True)
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    learn.loss_components.to_csv(run_dir / "loss_components.csv", index=False)
    df = embed_store(model, store, cfg, indices=np.flatnonzero(split == "test"), split=split)
    df.to_parquet(run_dir / "embeddings.parquet", index=False)
    metrics = summarise(df, holdout_methods=cfg.train.holdout_methods)
    metrics.update({
        "config": cfg.name, "arch": cfg.model.arch, "epochs": cfg.train.epochs,
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
        "n_train": int((split == "train").sum()), "n_valid": int((split == "valid").sum()),
        "pretrained": bool(cfg.model.pretrained), "device": str(learn.dls.device),
        "processes": world_size(),
    })
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def train(store, cfg: Config, run_dir: str | Path, device=None, progress: bool = True) -> Learner:
    """Train AMDD (or CAD, ``cfg.model.arch``) on a clip store and write the run directory:
    :func:`prepare_run` -> :func:`build_learner` -> (``lr_find``) -> :func:`fit` ->
    :func:`finish_run`.

    Launched on several processes, each trains on its device (``cuda:LOCAL_RANK`` or the CPU)
    and rank 0 alone scores the test split and writes the outputs; ``lr_find`` runs on one
    process only (it is skipped, with a note, on several).
    """
    distributed = world_size() > 1
    if distributed and device is None:
        device = process_device()
    split = prepare_run(store, cfg, run_dir)
    learn = build_learner(store, cfg, split, Path(run_dir), device=device)
    if cfg.train.lr_find and distributed:
        if is_main():
            print("train.lr_find is skipped on several processes: run it on one")
    elif cfg.train.lr_find:
        with (nullcontext() if progress else learn.no_bar()):
            lr_find(learn, show_plot=False)
    seconds = fit(learn, cfg, progress=progress)
    if is_main():
        finish_run(learn, store, cfg, split, run_dir, train_seconds=seconds)
    if distributed:
        teardown_distrib()
    return learn


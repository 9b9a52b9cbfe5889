"""Run folders an experiment reuses: is a run current, train it or reuse it, cached embeddings.

An experiment (the ablation rows, the shortcut audit) trains into a run folder of its own and
reads it back on the next call when nothing changed: same config, same clip store.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import Config

log = logging.getLogger(__name__)

TRAIN_EMBEDDINGS = "embeddings_train.parquet"  # per-run cache of the train-split embeddings

__all__ = ["TRAIN_EMBEDDINGS", "run_is_current", "train_or_reuse", "train_embeddings"]


def run_is_current(run_dir: str | Path, cfg: Config, store_path: str | Path | None = None
                   ) -> bool:
    """True when ``run_dir`` is a finished run of exactly ``cfg`` (and of ``store_path``).

    Finished = ``metrics.json``, ``model.pth`` and ``config.json`` exist; the saved config must
    equal ``cfg`` field by field, and when the run recorded its store (``store.txt``) that must be
    ``store_path``. Anything else (missing, unreadable, different) means "train again".
    """
    run_dir = Path(run_dir)
    if not all((run_dir / f).exists() for f in ("metrics.json", "config.json", "model.pth")):
        return False
    try:
        saved = Config.load(run_dir / "config.json")
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        log.warning("%s/config.json unreadable (%s): retraining", run_dir, e)
        return False
    if saved.to_dict() != cfg.to_dict():
        return False
    rec = run_dir / "store.txt"
    if store_path is not None and rec.exists():
        return Path(rec.read_text().strip()) == Path(store_path).resolve()
    return True


def train_or_reuse(store, cfg: Config, run_dir: str | Path, progress: bool = False,
                   stale: Sequence[str] = ()):
    """Train ``cfg`` on ``store`` into ``run_dir`` unless :func:`run_is_current` says the run
    there is already that training.

    ``stale``: files of ``run_dir`` derived from an older model (caches), deleted before a
    retraining. Returns the fastai ``Learner`` when it trained, ``None`` when it reused the run.
    """
    from ..train import train

    run_dir = Path(run_dir)
    if run_is_current(run_dir, cfg, getattr(store, "path", None)):
        log.info("%s is current, not retrained", run_dir)
        return None
    for name in stale:
        (run_dir / name).unlink(missing_ok=True)
    return train(store, cfg, run_dir, progress=progress)


def train_embeddings(run_dir: str | Path, store, cfg: Config) -> pd.DataFrame:
    """Embeddings of the run's train split (``inference.embed_store`` columns), cached in
    ``run_dir/embeddings_train.parquet``."""
    from ..evaluate import read_split
    from ..inference import embed_store, load_run

    run_dir = Path(run_dir)
    path = run_dir / TRAIN_EMBEDDINGS
    if path.exists():
        return pd.read_parquet(path)
    _, model = load_run(run_dir)
    split = read_split(run_dir, store, cfg)
    df = embed_store(model, store, cfg, indices=np.flatnonzero(split == "train"), split=split)
    df.to_parquet(path, index=False)
    return df

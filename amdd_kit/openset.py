"""The open set of a run: fitted from its clips, kept beside it, loaded back.

:func:`load_or_fit_open_set` is the one call the rest of the kit makes (``evaluate``, ``predict``,
the explorer, notebook 05): the saved open set when it belongs to the run's current
``model.pth``, else one fitted now (:func:`fit_run_open_set`: the run's training and validation
clips embedded, :func:`amdd_kit.openset_scores.fit_open_set` on them, the recommended score
following the run's config) and saved.

Where it is kept: ``RUN/open_set.json`` (classes, thresholds, recommendation, fingerprint of
``model.pth``: :meth:`~amdd_kit.openset_scores.OpenSet.summary`) and ``RUN/open_set_bank.npz``
(the normalised training embeddings with their class, the validation clips' embeddings and
logits; at most ``max_bank`` clips each), written by :func:`save_open_set`, read by
:func:`load_open_set`. :func:`heldout_clips` gives the held-out sets' clips as the run scores
them, the unknown clips of the open-set protocols (:mod:`amdd_kit.openset_eval`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import METHODS
from .jsonio import jsonable
from .openset_scores import OpenSet, fit_open_set, recommended_score

log = logging.getLogger(__name__)

OPEN_SET_JSON, OPEN_SET_BANK = "open_set.json", "open_set_bank.npz"

__all__ = ["OPEN_SET_JSON", "OPEN_SET_BANK", "fit_tables", "fit_run_open_set",
           "model_fingerprint", "save_open_set", "load_open_set", "load_or_fit_open_set",
           "heldout_clips"]


def fit_tables(run_dir: str | Path, store=None, run=None, batch_size: int = 32
               ) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Embed a run's training and validation clips -> ``(train_df, valid_df, cfg)``.

    ``store``: the training store (path or opened; default ``RUN/store.txt``); ``run``: the
    run's ``(cfg, model)`` when already loaded.
    """
    from .data.store import ClipStore
    from .evaluate import read_split  # evaluate builds on this module: import late
    from .inference import embed_store, load_run

    run_dir = Path(run_dir)
    if store is None:
        rec = run_dir / "store.txt"
        if not rec.exists():
            raise FileNotFoundError(f"{rec} does not say which store {run_dir} was trained on: "
                                    f"pass the store (`store=`)")
        store = rec.read_text().strip()
    if isinstance(store, (str, Path)):
        if not (Path(store) / "manifest.parquet").exists():
            raise FileNotFoundError(f"the training store {store} is not there: preprocess it "
                                    f"(notebook 01 or `amdd-kit preprocess`) or pass `store=`")
        store = ClipStore(store)
    cfg, model = run if run is not None else load_run(run_dir)
    split = read_split(run_dir, store, cfg)
    idx = np.flatnonzero(np.isin(split, ["train", "valid"]))
    df = embed_store(model, store, cfg, indices=idx, batch_size=batch_size, split=split)
    return (df[df["split"] == "train"].reset_index(drop=True),
            df[df["split"] == "valid"].reset_index(drop=True), cfg)


def fit_run_open_set(run_dir: str | Path, store=None, run=None, **kwargs) -> OpenSet:
    """Fit a run's open set: its train and validation clips embedded (:func:`fit_tables`;
    ``store`` and ``run`` as there), the recommendation following the run's config
    (:func:`~amdd_kit.openset_scores.recommended_score`), the fingerprint of its weights kept.
    ``kwargs`` go to :func:`~amdd_kit.openset_scores.fit_open_set` (``k``, ``tpr``, ...)."""
    run_dir = Path(run_dir)
    train, valid, cfg = fit_tables(run_dir, store=store, run=run)
    kwargs.setdefault("recommended", recommended_score(cfg))
    return fit_open_set(train, valid, model_sha1=model_fingerprint(run_dir), **kwargs)


def model_fingerprint(run_dir: str | Path) -> str:
    """SHA-1 of ``RUN/model.pth`` ("" when missing): a saved open set belongs to these weights."""
    path = Path(run_dir) / "model.pth"
    if not path.exists():
        return ""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_open_set(os_: OpenSet, run_dir: str | Path) -> Path:
    """Write ``RUN/open_set.json`` and ``RUN/open_set_bank.npz``; returns the json path."""
    run_dir = Path(run_dir)
    np.savez_compressed(run_dir / OPEN_SET_BANK, train_emb=os_.train_emb,
                        train_labels=os_.train_labels, valid_emb=os_.valid_emb,
                        valid_logits=os_.valid_logits, valid_labels=os_.valid_labels)
    path = run_dir / OPEN_SET_JSON
    path.write_text(json.dumps(jsonable(os_.summary()), indent=2) + "\n")
    return path


def load_open_set(run_dir: str | Path) -> OpenSet:
    """The open set saved beside a run (:func:`save_open_set`)."""
    run_dir = Path(run_dir)
    meta_path, bank_path = run_dir / OPEN_SET_JSON, run_dir / OPEN_SET_BANK
    for p in (meta_path, bank_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: fit the open set first (`amdd-kit evaluate "
                                    f"--run {run_dir}`, notebook 04, or "
                                    f"`amdd_kit.openset.load_or_fit_open_set`)")
    meta = json.loads(meta_path.read_text())
    with np.load(bank_path) as b:
        arrays = {k: b[k] for k in b.files}
    return OpenSet([METHODS.index(c) for c in meta["classes"]], arrays["train_emb"],
                   arrays["train_labels"], arrays["valid_emb"], arrays["valid_logits"],
                   arrays["valid_labels"], k=int(meta["k"]), tpr=float(meta["tpr"]),
                   recommended=meta["recommended"], model_sha1=meta.get("model_sha1", ""))


def load_or_fit_open_set(run_dir: str | Path, store=None, run=None, save: bool = True
                         ) -> OpenSet:
    """The run's saved open set when it belongs to the run's current ``model.pth``; otherwise
    fit it (:func:`fit_run_open_set`) and, with ``save``, write it beside the run (logged)."""
    run_dir = Path(run_dir)
    if (run_dir / OPEN_SET_JSON).exists() and (run_dir / OPEN_SET_BANK).exists():
        os_ = load_open_set(run_dir)
        if os_.model_sha1 == model_fingerprint(run_dir):
            return os_
        log.info("%s belongs to other weights: fitting the open set again", run_dir / OPEN_SET_JSON)
    os_ = fit_run_open_set(run_dir, store=store, run=run)
    if save:
        try:
            log.info("open set fitted and saved: %s", save_open_set(os_, run_dir))
        except OSError as e:  # a read-only run folder: use it without keeping it
            log.warning("open set fitted but not saved in %s: %s", run_dir, e)
    return os_


def heldout_clips(run_dir: str | Path, store=None, run=None) -> pd.DataFrame:
    """The held-out sets' clips as scored by the run, column ``eval_set``: the
    ``embeddings_cross.parquet`` that ``evaluate`` / notebook 04 wrote when it holds the logits;
    otherwise the stores beside the training store (``store``, default ``RUN/store.txt``;
    :func:`amdd_kit.evaluate.find_cross_stores`) are embedded now. Empty when there are none."""
    from .data.store import ClipStore
    from .evaluate import find_cross_stores  # evaluate builds on this module: import late
    from .inference import embed_store, load_run

    run_dir = Path(run_dir)
    path = run_dir / "embeddings_cross.parquet"
    if path.exists():
        df = pd.read_parquet(path)
        if "attr_logits" in df.columns:
            return df
    if store is None:
        rec = run_dir / "store.txt"
        store = rec.read_text().strip() if rec.exists() else None
    found = find_cross_stores(getattr(store, "path", store)) if store is not None else {}
    if not found:
        return pd.DataFrame()
    cfg, model = run if run is not None else load_run(run_dir)
    frames = [embed_store(model, ClipStore(p), cfg).assign(eval_set=name)
              for name, p in found.items()]
    return pd.concat(frames, ignore_index=True)

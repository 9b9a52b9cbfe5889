"""Evaluate a trained run: test-split metrics, attribution confusion, cross-dataset transfer.

Backs ``amdd-kit evaluate --run RUN --store STORE [--out DIR] [--cross NAME=STORE ...]``.

Protocols
---------
* **Test split** -- the identity-disjoint split the trainer recorded in ``RUN/splits.csv``
  (``clip_id, split``); only ``test`` clips are scored, so no identity seen in training is
  scored here.
* **Cross-dataset** -- held-out stores in the LAV-DF, DeepfakeTIMIT and DFDM layouts, whose
  generators were never seen in training. For each we report ``real_recall`` (reals called
  real), ``fake_recall`` (fakes called fake), ``auc`` and ``n``, plus where their fakes *land*
  in attribution (the share given to each of the 7 training classes). The paper's finding is
  that reals transfer (high real recall) while unseen generators do not (low fake recall).
* **Partial fakes (LAV-DF)** -- a LAV-DF fake only edits a few short segments, so a window cut
  from a fake video may contain no edit at all. Every clip is scored against its own window
  label, the store's ``clip_label`` (1 when the window overlaps a fake segment), not the video's
  ``label``; :func:`amdd_kit.inference.embed_store` keeps both columns.
* **Unseen generators within FakeAVCeleb** -- methods listed in
  ``cfg.train.holdout_methods`` are kept out of train/valid and land in the test split;
  :func:`unseen_generator_report` shows how they are scored.
* **Open set** -- can the model say "none of the generators I know"?
  :mod:`amdd_kit.openset_scores` scores every clip for rejection (maximum softmax, energy,
  distance to the nearest training centroid, k-nearest-neighbour distance), sets each threshold
  on validation clips of known generators, and :mod:`amdd_kit.openset_eval` measures the
  held-out sets' fakes (and the held-out methods' clips) against the known test clips.

Outputs (in ``out``, by default the run dir): ``metrics.json`` (merged with what the trainer
wrote; cross-dataset blocks under ``cross_dataset``; the split's clip counts and the fakes left
out for their face donor under ``split``, see :func:`amdd_kit.data.splits.split_report`;
attribution beside its majority baseline, see :mod:`amdd_kit.metrics`), ``confusion.csv``,
``embeddings.parquet``
(test split) and ``embeddings_cross.parquet`` (all held-out sets, column ``eval_set``);
``open_set.json`` + ``open_set_bank.npz`` and the ``open_set`` block of ``metrics.json``
(:func:`open_set_report`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .config import METHODS
from .data.splits import identity_split, split_report
from .data.store import ClipStore
from .inference import embed_store, load_run
from .jsonio import jsonable as _jsonable
from .metrics import binary_metrics, confusion, summarise

log = logging.getLogger(__name__)

#: held-out dataset layouts looked for beside the training store
CROSS_DATASETS: tuple[str, ...] = ("lavdf", "dftimit", "dfdm")

__all__ = ["CROSS_DATASETS", "evaluate_run", "find_cross_stores", "read_split",
           "open_set_report", "attribution_landing", "cross_block", "unseen_generator_report",
           "cross_table"]


# -- pieces -------------------------------------------------------------------------------------
def attribution_landing(df: pd.DataFrame, classes: Sequence[str] = METHODS) -> dict[str, float]:
    """Share of the rows of ``df`` attributed to each class -> ``{class: fraction}``.

    All classes are listed (0.0 when none landed there); empty ``df`` -> all 0.0.
    """
    share = df["pred_method"].value_counts(normalize=True)
    return {c: float(share.get(c, 0.0)) for c in classes}


def cross_block(df: pd.DataFrame) -> dict[str, Any]:
    """Metrics of one held-out set: ``real_recall``, ``fake_recall``, ``auc``, ``n`` and more.

    ``df`` is an embeddings table (``clip_label`` = window label, ``p_fake``, ``pred_method``).
    Also ``balanced_accuracy``, ``n_real``, ``n_fake``, ``mean_p_fake_real/fake`` and
    ``fake_landing`` (:func:`attribution_landing` of the fakes). Undefined values (AUC with one
    class, the recall of an absent class) are NaN here and ``null`` in metrics.json.
    """
    label = df["clip_label"].to_numpy().astype(int)
    b = binary_metrics(label, df["p_fake"].to_numpy())
    fakes, reals = df[label == 1], df[label == 0]
    return {
        "real_recall": b["real_recall"], "fake_recall": b["fake_recall"], "auc": b["auc"],
        "balanced_accuracy": b["balanced_accuracy"], "n": int(len(df)),
        "n_real": int(len(reals)), "n_fake": int(len(fakes)),
        "mean_p_fake_real": float(reals["p_fake"].mean()) if len(reals) else float("nan"),
        "mean_p_fake_fake": float(fakes["p_fake"].mean()) if len(fakes) else float("nan"),
        "fake_landing": attribution_landing(fakes),
    }


def unseen_generator_report(df: pd.DataFrame, holdout_methods: Sequence[str]
                            ) -> dict[str, dict[str, Any]]:
    """How fakes of generators held out of training are scored.

    Per held-out method present in ``df``: ``n``, ``fake_recall`` (share called fake),
    ``mean_p_fake`` and ``landing`` (share attributed to each training class; the true class
    was never trained, so an ``attribution`` to it is impossible by construction). For
    comparison the key ``"seen fakes"`` summarises the fakes of the other methods.
    """
    out: dict[str, dict[str, Any]] = {}
    held = [m for m in holdout_methods]
    fakes = df[df["clip_label"].astype(int) == 1]

    def block(g: pd.DataFrame) -> dict[str, Any]:
        return {"n": int(len(g)),
                "fake_recall": binary_metrics(g["clip_label"], g["p_fake"])["fake_recall"],
                "mean_p_fake": float(g["p_fake"].mean()) if len(g) else float("nan"),
                "landing": attribution_landing(g)}

    for m in held:
        g = fakes[fakes["method"] == m]
        if len(g) == 0:
            log.warning("unseen_generator_report: no fakes of held-out method %r in the table", m)
        out[m] = block(g)
    out["seen fakes"] = block(fakes[~fakes["method"].isin(held)])
    return out


def cross_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per evaluated set (``test`` + each cross-dataset block) for display."""
    rows = [{"set": "test (seen generators)", "real_recall": metrics.get("real_recall"),
             "fake_recall": metrics.get("fake_recall"), "auc": metrics.get("auc"),
             "n": metrics.get("n_test")}]
    for name, b in (metrics.get("cross_dataset") or {}).items():
        if "error" in b:
            rows.append({"set": name, "error": b["error"]})
            continue
        rows.append({"set": name, **{k: b.get(k) for k in ("real_recall", "fake_recall", "auc",
                                                             "n")}})
    return pd.DataFrame(rows).set_index("set")


def find_cross_stores(store_path: str | Path, names: Sequence[str] = CROSS_DATASETS
                      ) -> dict[str, Path]:
    """Held-out stores beside a training store, built with the same config.

    ``DATA/stores/fakeavceleb-tiny`` -> ``DATA/stores/lavdf-tiny`` etc. (the naming of
    :func:`amdd_kit.data.store.store_dir`); only folders holding a ``manifest.parquet``.
    """
    store_path = Path(store_path)
    _, sep, rest = store_path.name.partition("-")
    if not sep:
        return {}
    found = {}
    for name in names:
        cand = store_path.parent / f"{name}-{rest}"
        if (cand / "manifest.parquet").exists():
            found[name] = cand
    return found


def read_split(run_dir: str | Path, store, cfg=None) -> np.ndarray:
    """The run's split (``train``/``valid``/``test``) per clip of ``store`` -> ``[N]`` strings.

    Read from ``RUN/splits.csv``. When the file is missing, the identity split is recomputed
    from the run's config (the same call the trainer makes) and a warning is logged. A
    ``splits.csv`` that does not match the store's clips raises ``ValueError``.
    """
    path = Path(run_dir) / "splits.csv"
    m = store.manifest
    if not path.exists():
        if cfg is None:
            raise FileNotFoundError(f"{path} not found and no config to recompute the split")
        log.warning("%s not found: recomputing the identity split from the run's config", path)
        return np.asarray(identity_split(m, cfg.train.valid_frac, cfg.train.test_frac,
                                         cfg.train.split_seed,
                                         holdout_methods=cfg.train.holdout_methods))
    s = pd.read_csv(path)
    if not {"clip_id", "split"} <= set(s.columns):
        raise ValueError(f"{path} must have the columns clip_id, split")
    lookup = dict(zip(s["clip_id"].astype(int), s["split"].astype(str)))
    ids = m["clip_id"].astype(int).to_numpy()
    missing = [i for i in ids if i not in lookup]
    if missing:
        raise ValueError(f"{path} does not cover {len(missing)} clips of the store (e.g. "
                         f"clip_id {missing[0]}): was the run trained on another store?")
    return np.array([lookup[i] for i in ids])


def open_set_report(run_dir: Path, store, run: tuple, test_df: pd.DataFrame,
                    cross_df: pd.DataFrame | None, holdout: Sequence[str], out: Path
                    ) -> dict[str, Any]:
    """Fit (or load) the open set of a run, save it in ``out`` and return the ``open_set`` block
    of ``metrics.json`` (:func:`amdd_kit.openset_eval.open_set_block`). Known clips: the test
    clips of trained generators; unknown: each held-out set's fakes (window label 1; its reals
    are counted apart) and the clips of each held-out method."""
    from .openset import load_or_fit_open_set, save_open_set
    from .openset_eval import open_set_block

    try:
        os_ = load_or_fit_open_set(run_dir, store=store, run=run, save=out == run_dir)
    except (FileNotFoundError, KeyError, ValueError) as e:
        log.warning("open set of %s not fitted: %s", run_dir, e)
        return {"error": f"{type(e).__name__}: {e}"}
    if out != run_dir:
        save_open_set(os_, out)
    cross, cross_known = {}, {}
    if cross_df is not None:
        for name, g in cross_df.groupby("eval_set", sort=False):
            fake = g["clip_label"].astype(int) == 1
            cross[name], cross_known[name] = g[fake], g[~fake & (g["method_idx"] >= 0)]
    unseen = {m: test_df[test_df["method"] == m] for m in holdout}
    # known: the test clips of the classes the open set was fitted on (held-out methods are not)
    return open_set_block(os_, test_df, cross=cross, unseen=unseen, cross_known=cross_known)


# -- the whole evaluation -----------------------------------------------------------------------
def _open(store):
    """A store given as a path is opened; an opened store (a :class:`ClipStore` or any object
    with ``manifest``, ``frames``, ``mels``) is used as it is."""
    return ClipStore(store) if isinstance(store, (str, Path)) else store


def evaluate_run(run_dir: str | Path, store=None, out: str | Path | None = None,
                 cross_stores: Mapping[str, Any] | None = None,
                 batch_size: int = 32, device=None, run: tuple | None = None,
                 open_set: bool = False) -> dict[str, Any]:
    """Score a run's test split and the held-out stores; write the evaluation files.

    ``store``: the training store, a path or an opened :class:`ClipStore` (default: the path
    recorded in ``RUN/store.txt``).
    ``cross_stores``: ``{name: store path or store}``; ``None`` looks for the LAV-DF /
    DeepfakeTIMIT / DFDM stores beside the training store (:func:`find_cross_stores`); ``{}``
    skips them. A held-out store that cannot be opened or scored is logged and recorded as
    ``{"error": ...}`` in its block; the rest of the evaluation goes on.
    ``run``: the run's ``(cfg, model)`` when already loaded (default:
    :func:`amdd_kit.inference.load_run` of ``run_dir``).
    ``open_set``: also fit the open-set attributor (:mod:`amdd_kit.openset`: it embeds the
    train and validation clips once, unless the run already holds one for these weights), save
    it in ``out`` (``open_set.json``, ``open_set_bank.npz``) and add the ``open_set`` block: the
    held-out sets' fakes, and the clips of ``train.holdout_methods``, against the known test
    clips. ``amdd-kit evaluate`` and notebook 04 turn it on; off by default so that callers
    that evaluate many runs (the ablation rows) do not pay for it. A fit that fails is logged and
    recorded as ``{"error": ...}``.
    Returns the merged ``metrics.json`` content.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    if store is None:
        rec = run_dir / "store.txt"
        if not rec.exists():
            raise FileNotFoundError(f"no --store given and {rec} does not record one")
        store = rec.read_text().strip()
    store = _open(store)
    if cross_stores is None:
        cross_stores = find_cross_stores(store.path)

    cfg, model = run if run is not None else load_run(run_dir, device=device)
    split = read_split(run_dir, store, cfg)
    test_idx = np.flatnonzero(split == "test")
    if len(test_idx) == 0:
        raise ValueError(f"the split of {run_dir} has no test clips")
    df = embed_store(model, store, cfg, indices=test_idx, batch_size=batch_size, device=device,
                     split=split)
    df.to_parquet(out / "embeddings.parquet", index=False)
    confusion(df).to_csv(out / "confusion.csv", index_label="true")

    metrics: dict[str, Any] = {}
    for src in dict.fromkeys([run_dir / "metrics.json", out / "metrics.json"]):
        if src.exists():
            try:
                metrics.update(json.loads(src.read_text()))
            except json.JSONDecodeError as e:
                log.warning("ignoring unreadable %s: %s", src, e)
    holdout = tuple(cfg.train.holdout_methods)
    # summarise scores the ``label`` column: here every window by its own label
    metrics.update(summarise(df.assign(label=df["clip_label"]), holdout_methods=holdout))
    metrics.pop("per_method_recall", None)       # the old name of detection_recall
    metrics["split"] = split_report(store.manifest, split, holdout_methods=holdout)
    metrics["test_store"] = str(getattr(store, "path", ""))
    if holdout:
        metrics["unseen_generators"] = unseen_generator_report(df, holdout)

    blocks: dict[str, Any] = dict(metrics.get("cross_dataset") or {})
    frames = []
    for name, cstore in cross_stores.items():
        path = getattr(cstore, "path", cstore)
        try:
            cstore = _open(cstore)
            if len(cstore) == 0:
                raise ValueError("the store holds no clips")
            cdf = embed_store(model, cstore, cfg, batch_size=batch_size, device=device)
        except Exception as e:  # one bad held-out set must not lose the others
            log.warning("cross-dataset %s (%s) skipped: %s", name, path, e)
            blocks[name] = {"error": f"{type(e).__name__}: {e}", "store": str(path)}
            continue
        cdf.insert(0, "eval_set", name)
        frames.append(cdf)
        blocks[name] = {**cross_block(cdf), "store": str(path)}
    if cross_stores:
        metrics["cross_dataset"] = blocks
    cross_df = pd.concat(frames, ignore_index=True) if frames else None
    if cross_df is not None:
        cross_df.to_parquet(out / "embeddings_cross.parquet", index=False)
    if open_set:
        metrics["open_set"] = open_set_report(run_dir, store, (cfg, model), df, cross_df,
                                              holdout, out)
    metrics = _jsonable(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics

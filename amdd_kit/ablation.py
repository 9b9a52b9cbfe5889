"""Loss ablations and the CAD comparison: train one run per row, then compare them in one table.

The AMDD paper claims that attribution supervision *shapes the embedding*: without the
attribution loss, attribution accuracy falls from 95.9 % to 11.0 % and the per-generator clusters
blur. This module lets a class test such claims instead of taking them on trust.

Each row of :data:`ABLATIONS` is a set of config overrides on top of the base config
(``{"loss.w_attr": 0.0}`` switches Eq. 2 off, ...). :func:`run_ablations` trains every row on the
**same clip store, the same identity split and the same seed**, each into ``out_dir/<row>/``, and
measures, per row, on the test identities:

* ``balanced_accuracy``, ``auc`` -- real/fake detection;
* ``attribution_accuracy`` -- the attribution head's accuracy over the 7 generator classes; for a
  row trained without the attribution loss the head never learnt anything, so there the value is
  a **linear probe** (a logistic regression fitted on the frozen shared embeddings of the train
  split, scored on the test split). ``attribution_source`` says which one it is;
* ``probe_accuracy`` -- the linear probe for *every* row, so all rows can be compared on the same
  footing: "how much generator information does the shared embedding hold?";
* ``silhouette`` -- how well the test shared embeddings cluster by generator (cosine, -1..1);
* ``trace_probe_visual`` / ``trace_probe_audio`` -- a linear probe of each modality's
  fingerprint (``f_v`` / ``f_a``) on its own trace label (``config.METHOD_TRACES``):
  does the fingerprint identify its trace (what CMFFC, Eq. 4, trains for)? A collapsed
  fingerprint scores the majority baseline, so this check cannot be passed by a collapse;
* ``fake_recall_<set>`` and ``fake_recall_heldout`` -- the share of fakes called fake on each
  held-out store (generators never seen in training) and their mean.

Uncertainty has two sources. Training is random (initial weights, batch order, augmentation,
dropout all follow ``train.seed``), so ``seeds=[...]`` trains every row once per seed, the same
seeds for every row. And test clips come in groups (about 16 per identity from a handful of test
identities), so a binomial standard error over clips is far too optimistic.
:func:`bootstrap_rows` resamples the **training seeds and the test identities** together (the
same draw for every row: the rows share seeds and split, so the comparison is paired) and
recomputes every metric; :func:`paper_claims` calls a difference real only when its 95 %
bootstrap interval excludes 0, and says "contradicted" when the interval lies on the other side:
each verdict can come out either way.

Results go to ``out_dir/ablation.csv``, ``out_dir/ablation.json`` (means over the seeds),
``out_dir/ablation_seeds.csv`` (every row and seed) and the bootstrap draws to
``out_dir/bootstrap.json``. The run is resumable: a row
whose run dir already holds ``metrics.json`` and a ``config.json`` equal to the row's config is
read, not retrained. :func:`amdd_kit.claims.paper_claims` (re-exported here) turns the table into
plain-language verdicts.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .config import Config
from .claims import (CLAIM_GROUPS, claims_markdown, difference, interval,  # noqa: F401
                     paper_claims, verdict)
from .jsonio import as_float as _num
from .jsonio import jsonable as _jsonable
from .viz import METRIC_LABELS, embedding_panels, metric_figure  # noqa: F401 (notebook 06)

log = logging.getLogger(__name__)

#: Ablation rows: name -> dotted config overrides applied on top of the base config.
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},                                      # AMDD, all five terms (Eq. 6)
    "no_attribution": {"loss.w_attr": 0.0},          # no Eq. 2: no attribution head training
    "no_cmffc": {"loss.w_cmffc": 0.0},               # no Eq. 4
    "no_contrastive": {"loss.w_con": 0.0},           # no Eq. 3
    "no_centroid": {"loss.w_cent": 0.0},             # no Eq. 5
    # Eq. 4 and Eq. 5 also read the generator labels, so "no_attribution" still sees them; this
    # row removes every generator-label term: detection (Eq. 1) + contrastive (Eq. 3, real/fake
    # only). It answers "is it the attribution *labels* that shape the embedding?"
    "detection_only": {"loss.w_attr": 0.0, "loss.w_cmffc": 0.0, "loss.w_cent": 0.0},
    "cad": {"model.arch": "cad"},                    # the comparison method (CAD, Eq. 7-8)
}

#: What each row means, for tables and notebooks.
DESCRIPTIONS: dict[str, str] = {
    "full": "AMDD: focal + attribution CE + contrastive + CMFFC + centroid",
    "no_attribution": "AMDD without the attribution loss (Eq. 2)",
    "no_cmffc": "AMDD without CMFFC (Eq. 4)",
    "no_contrastive": "AMDD without the contrastive loss (Eq. 3)",
    "no_centroid": "AMDD without centroid regularisation (Eq. 5)",
    "detection_only": "AMDD trained with real/fake labels only (Eq. 1 + Eq. 3)",
    "cad": "CAD: cross-attention alignment + KL agreement + distillation (Eq. 7-8)",
}

#: The metric columns of the table, in display order (all "higher is better").
METRIC_COLUMNS: tuple[str, ...] = ("balanced_accuracy", "auc", "attribution_accuracy",
                                   "probe_accuracy", "silhouette", "trace_probe_visual",
                                   "trace_probe_audio", "fake_recall_heldout")
#: Metrics recomputed on every bootstrap resample of the test identities.
BOOT_METRICS: tuple[str, ...] = ("balanced_accuracy", "attribution_accuracy", "probe_accuracy",
                                 "silhouette", "trace_probe_visual", "trace_probe_audio",
                                 "attribution_majority")
BOOT_FILE = "bootstrap.json"
SEEDS_FILE = "ablation_seeds.csv"     # one line per (row, training seed): the per-seed values
SCORED_FILE = "scored_test.parquet"   # per-row per-clip scores the bootstrap resamples

ROW_FILE = "ablation_row.json"         # per-row cache of the derived metrics
ROW_VERSION = 4                        # bump when row_metrics gains columns (invalidates caches)
TRAIN_EMBEDDINGS = "embeddings_train.parquet"  # per-row cache of the train-split embeddings

__all__ = ["ABLATIONS", "DESCRIPTIONS", "METRIC_COLUMNS", "BOOT_METRICS", "ablation_config",
           "run_is_current", "attribution_from_embeddings", "probe_predictions", "scored_clips",
           "embedding_scores", "row_metrics", "bootstrap_rows", "run_ablations", "load_table",
           "load_bootstrap", "seed_table", "row_runs", "paper_claims"]


# -- configs ------------------------------------------------------------------------------------
def ablation_config(cfg: Config, row: str) -> Config:
    """The config of one ablation row: ``cfg`` with ``ABLATIONS[row]`` applied (a copy)."""
    if row not in ABLATIONS:
        raise ValueError(f"unknown ablation row {row!r}; choose from {list(ABLATIONS)}")
    return cfg.override(ABLATIONS[row])


def attribution_trained(cfg: Config) -> bool:
    """Whether the attribution head of a run with this config was trained (Eq. 2 weight > 0)."""
    return cfg.loss.w_attr > 0


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


# -- metrics from embeddings --------------------------------------------------------------------
def _known(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of one of the 7 training generator classes (``method_idx >= 0``)."""
    return df[df["method_idx"].astype(int) >= 0] if "method_idx" in df.columns else df


def probe_predictions(train_df: pd.DataFrame | None, test_df: pd.DataFrame,
                      column: str = "embedding", target: str = "method_idx",
                      seed: int = 0) -> np.ndarray | None:
    """A linear probe (logistic regression on frozen vectors ``train_df[column]`` ``[N,d]``,
    labels ``train_df[target]``) and its predictions ``[N_test]`` for ``test_df``.

    Only clips of known generators (``method_idx >= 0``) take part; ``None`` (logged) when it
    cannot be fitted (no train table, fewer than two classes, empty test).
    """
    from .geometry import linear_probe_predict, stack_column

    if train_df is None:
        return None
    tr, te = _known(train_df), _known(test_df)
    if len(te) == 0 or tr[target].nunique() < 2:
        log.warning("linear probe: need >= 2 classes of %s in train and a non-empty test", target)
        return None
    return linear_probe_predict(stack_column(tr, column), tr[target].astype(str).to_numpy(),
                                stack_column(te, column), seed=seed)


def attribution_from_embeddings(train_df: pd.DataFrame | None, test_df: pd.DataFrame,
                                column: str = "embedding", seed: int = 0) -> float:
    """Linear-probe attribution accuracy on frozen embeddings (NaN when it cannot be fitted)."""
    pred = probe_predictions(train_df, test_df, column, seed=seed)
    if pred is None:
        return float("nan")
    return float((pred == _known(test_df)["method_idx"].astype(str).to_numpy()).mean())


def _traces(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``trace_visual`` / ``trace_audio`` columns (from ``method``)."""
    from .config import METHOD_TRACES

    if "trace_visual" in df.columns:
        return df
    t = [METHOD_TRACES.get(str(m), ("", "")) for m in df["method"]]
    return df.assign(trace_visual=[x[0] for x in t], trace_audio=[x[1] for x in t])


def scored_clips(test_df: pd.DataFrame, train_df: pd.DataFrame | None, cfg: Config,
                 seed: int = 0) -> pd.DataFrame:
    """Per-clip scores of one row on the known-generator test clips, for the bootstrap.

    Columns: ``identity``, ``method``, ``method_idx``, ``label``, ``p_fake``, ``embedding``,
    and 0/1 correctness of the attribution head (or the probe when the head was not trained:
    ``attr_ok``), of the shared-embedding probe (``probe_ok``) and of the fingerprint trace
    probes (``trace_v_ok``, ``trace_a_ok``; NaN when a probe cannot be fitted).
    """
    te = _traces(_known(test_df)).reset_index(drop=True)
    tr = _traces(train_df) if train_df is not None else None
    truth = te["method_idx"].astype(str).to_numpy()
    out = te[["identity", "method", "method_idx", "label", "p_fake", "embedding"]].copy()

    def ok(pred, y):
        return np.asarray(pred == y, float) if pred is not None else np.full(len(te), np.nan)

    out["probe_ok"] = ok(probe_predictions(tr, te, seed=seed), truth)
    if attribution_trained(cfg) and "pred_method_idx" in te.columns:
        out["attr_ok"] = (te["pred_method_idx"].astype(int) == te["method_idx"].astype(int)) \
            .astype(float).to_numpy()
    else:
        out["attr_ok"] = out["probe_ok"]
    out["trace_v_ok"] = ok(probe_predictions(tr, te, "f_v", "trace_visual", seed),
                           te["trace_visual"].astype(str).to_numpy())
    out["trace_a_ok"] = ok(probe_predictions(tr, te, "f_a", "trace_audio", seed),
                           te["trace_audio"].astype(str).to_numpy())
    return out


def sample_metrics(sc: pd.DataFrame) -> dict[str, float]:
    """The :data:`BOOT_METRICS` of a (possibly resampled) :func:`scored_clips` table."""
    from .geometry import silhouette, stack_column
    from .metrics import attribution_majority_baseline, balanced_accuracy

    label = sc["label"].astype(int).to_numpy()
    return {
        "balanced_accuracy": balanced_accuracy(label, sc["p_fake"].to_numpy(float)),
        "attribution_accuracy": float(np.nanmean(sc["attr_ok"])) if sc["attr_ok"].notna().any()
        else float("nan"),
        "probe_accuracy": float(np.nanmean(sc["probe_ok"])) if sc["probe_ok"].notna().any()
        else float("nan"),
        "silhouette": silhouette(stack_column(sc, "embedding"), sc["method"].to_numpy(), "cosine"),
        "trace_probe_visual": float(np.nanmean(sc["trace_v_ok"])) if sc["trace_v_ok"].notna().any()
        else float("nan"),
        "trace_probe_audio": float(np.nanmean(sc["trace_a_ok"])) if sc["trace_a_ok"].notna().any()
        else float("nan"),
        "attribution_majority": attribution_majority_baseline(sc["method_idx"]),
    }


def bootstrap_rows(scored: Mapping[str, pd.DataFrame], n_boot: int = 200, seed: int = 0
                   ) -> dict[str, dict[str, list[float]]]:
    """Paired hierarchical bootstrap over training seeds and test identities:
    ``{row: {metric: [n_boot values]}}``.

    ``scored[row]`` is the row's :func:`scored_clips` table, with a ``seed`` column (the training
    seed of each clip's run) when the row was trained with several seeds. Each draw samples the
    training seeds with replacement and, independently, the test identities with replacement;
    both samples are shared by every row (the rows share the seeds and the split, so differences
    between rows are paired). A row's value in a draw is the mean, over the drawn seeds, of
    :func:`sample_metrics` on that seed's clips of the drawn identities. When the seeds disagree
    the draws spread with them, so an interval widens instead of narrowing as it would if the
    seeds' clips were pooled. With one seed this is the identity bootstrap.
    """
    rng = np.random.default_rng(seed)
    ids = sorted(set().union(*[set(df["identity"].astype(str)) for df in scored.values()]))
    seeds = sorted(set().union(*[set(df["seed"]) if "seed" in df.columns else {None}
                                 for df in scored.values()]), key=str)
    parts: dict[str, dict] = {}     # row -> seed -> (table, identity -> clip positions)
    for r, df in scored.items():
        per_seed = {s: (df[df["seed"] == s] if s is not None else df).reset_index(drop=True)
                    for s in seeds}
        parts[r] = {s: (t, {i: np.flatnonzero(t["identity"].astype(str).to_numpy() == i)
                            for i in ids}) for s, t in per_seed.items() if len(t)}
    out: dict[str, dict[str, list[float]]] = {r: {m: [] for m in BOOT_METRICS} for r in scored}
    for _ in range(n_boot):
        drawn_seeds = Counter(seeds[j] for j in rng.integers(0, len(seeds), len(seeds)))
        draw = rng.choice(ids, size=len(ids), replace=True)
        for r in scored:
            vals = {m: [] for m in BOOT_METRICS}
            for s, count in drawn_seeds.items():
                if s not in parts[r]:
                    continue
                table, groups = parts[r][s]
                idx = np.concatenate([groups[i] for i in draw])
                for m, v in sample_metrics(table.iloc[idx]).items():
                    vals[m] += [v] * count
            for m in BOOT_METRICS:
                v = np.asarray(vals[m], float)
                out[r][m].append(float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"))
    return out


def embedding_scores(test_df: pd.DataFrame) -> dict[str, float]:
    """Cosine silhouette of the test shared embeddings grouped by ``method`` (-1..1)."""
    from .geometry import silhouette, stack_column

    df = _known(test_df)
    if len(df) == 0:
        return {"silhouette": float("nan")}
    return {"silhouette": silhouette(stack_column(df, "embedding"), df["method"].to_numpy(),
                                     "cosine")}


def row_metrics(metrics: Mapping[str, Any], test_df: pd.DataFrame,
                train_df: pd.DataFrame | None, cfg: Config, seed: int = 0,
                scored: pd.DataFrame | None = None) -> dict[str, Any]:
    """One row of the ablation table from a run's ``metrics.json`` and embedding tables.

    ``metrics``: the run's metrics (``balanced_accuracy``, ``auc``, ``attribution_accuracy``,
    optional ``cross_dataset`` blocks with ``fake_recall``). ``test_df`` / ``train_df``:
    embeddings tables of the test and train splits. The attribution column comes from the head
    when ``cfg`` trained it, else from the linear probe (``attribution_source`` says which).
    """
    from .metrics import attribution_majority_baseline

    sc = scored if scored is not None else scored_clips(test_df, train_df, cfg, seed)
    sm = sample_metrics(sc) if len(sc) else {m: float("nan") for m in BOOT_METRICS}
    head = attribution_trained(cfg)
    out: dict[str, Any] = {
        "arch": cfg.model.arch,
        "balanced_accuracy": _num(metrics.get("balanced_accuracy")),
        "auc": _num(metrics.get("auc")),
        "attribution_accuracy": _num(metrics.get("attribution_accuracy")) if head
        else sm["probe_accuracy"],
        "attribution_source": "head" if head else "linear_probe",
        "probe_accuracy": sm["probe_accuracy"],
        "silhouette": sm["silhouette"],
        "trace_probe_visual": sm["trace_probe_visual"],
        "trace_probe_audio": sm["trace_probe_audio"],
        "attribution_majority": attribution_majority_baseline(test_df["method_idx"]),
        "n_test": int(metrics.get("n_test", len(test_df)) or 0),
        "n_test_identities": int(_known(test_df)["identity"].nunique())
        if "identity" in test_df.columns else 0,
        "train_seconds": _num(metrics.get("train_seconds")),
    }
    recalls = {}
    for name, block in (metrics.get("cross_dataset") or {}).items():
        if isinstance(block, dict) and "fake_recall" in block:
            recalls[f"fake_recall_{name}"] = _num(block.get("fake_recall"))
    out.update(recalls)
    vals = [v for v in recalls.values() if math.isfinite(v)]
    out["fake_recall_heldout"] = float(np.mean(vals)) if vals else float("nan")
    return out


# -- one row ------------------------------------------------------------------------------------
def _train_embeddings(run_dir: Path, store, cfg: Config) -> pd.DataFrame:
    """Embeddings of the run's train split (cached as ``embeddings_train.parquet``)."""
    path = run_dir / TRAIN_EMBEDDINGS
    if path.exists():
        return pd.read_parquet(path)
    from .evaluate import read_split
    from .inference import embed_store, load_run

    _, model = load_run(run_dir)
    split = read_split(run_dir, store, cfg)
    df = embed_store(model, store, cfg, indices=np.flatnonzero(split == "train"), split=split)
    df.to_parquet(path, index=False)
    return df


def _cross_done(metrics: Mapping[str, Any], names: Sequence[str]) -> bool:
    blocks = metrics.get("cross_dataset") or {}
    return all(n in blocks and "fake_recall" in blocks[n] for n in names)


def _cached_row(run_dir: Path, cfg: Config, cross: Mapping[str, Path],
                store_path) -> dict[str, Any] | None:
    """The row's metrics cached in ``ROW_FILE`` when they were computed for exactly this config,
    store and held-out sets (``None`` otherwise: compute them again)."""
    cache = run_dir / ROW_FILE
    if not (cache.exists() and (run_dir / SCORED_FILE).exists()):
        return None
    c = json.loads(cache.read_text())
    store = str(Path(store_path).resolve()) if store_path is not None else None
    same = (c.get("config_hash") == cfg.hash() and c.get("version") == ROW_VERSION
            and sorted(c.get("cross", [])) == sorted(cross) and c.get("store") == store)
    return c["row"] if same else None


def _one_row(row: str, store, cfg: Config, run_dir: Path, cross: Mapping[str, Path],
             progress: bool, keep_weights: bool = False) -> dict[str, Any]:
    """Train (unless current), evaluate on the held-out stores, compute the row's metrics.

    Once the row's scores are cached, its ``model.pth`` is deleted unless ``keep_weights``
    (88 MB per tiny run): everything the table, the bootstrap and the maps read is kept.
    """
    from .train import history_line, train

    store_path = getattr(store, "path", None)
    cached = _cached_row(run_dir, cfg, cross, store_path)
    if cached is not None:
        log.info("ablation %s: %s is scored and current, not retrained", row, run_dir)
        return {**cached, "retrained": False}
    trained = not run_is_current(run_dir, cfg, store_path)
    if trained:
        for stale in (ROW_FILE, TRAIN_EMBEDDINGS, SCORED_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        t0 = time.time()
        learn = train(store, cfg, run_dir, progress=progress)
        print(f"{row:15s} seed {cfg.train.seed}: {cfg.train.epochs} epochs in "
              f"{time.time() - t0:.0f} s; {history_line(learn)}", flush=True)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    if cross and not _cross_done(metrics, list(cross)):
        from .evaluate import evaluate_run
        metrics = evaluate_run(run_dir, store_path, cross_stores=dict(cross))
    test_df = pd.read_parquet(run_dir / "embeddings.parquet")
    train_df = _train_embeddings(run_dir, store, cfg)
    scored = scored_clips(test_df, train_df, cfg, seed=cfg.train.seed)
    scored.to_parquet(run_dir / SCORED_FILE, index=False)
    out = row_metrics(metrics, test_df, train_df, cfg, seed=cfg.train.seed, scored=scored)
    (run_dir / ROW_FILE).write_text(json.dumps({
        "config_hash": cfg.hash(), "version": ROW_VERSION, "cross": sorted(cross),
        "store": str(Path(store_path).resolve()) if store_path is not None else None,
        "row": _jsonable(out)}, indent=2) + "\n")
    if not keep_weights:
        (run_dir / "model.pth").unlink(missing_ok=True)
    return {**out, "retrained": trained}


def _same_split(run_dirs: Sequence[Path]) -> bool:
    """Do the finished runs share one identical ``splits.csv``?"""
    splits = [pd.read_csv(d / "splits.csv") for d in run_dirs if (d / "splits.csv").exists()]
    return all(s.equals(splits[0]) for s in splits[1:])


# -- the whole table ----------------------------------------------------------------------------
def run_ablations(store, cfg: Config, out_dir: str | Path, rows: Sequence[str] | None = None,
                  cross_stores: Mapping[str, str | Path] | None = None,
                  progress: bool = False, n_boot: int = 200, boot_seed: int = 0,
                  seeds: Sequence[int] | None = None, keep_weights: bool = False
                  ) -> pd.DataFrame:
    """Train and evaluate each ablation row; write ``out_dir/ablation.csv`` and ``.json``.

    Args:
        store: the training :class:`~amdd_kit.data.store.ClipStore` (same for every row).
        cfg: the base config; each row applies its :data:`ABLATIONS` overrides on top. The
            training seed (``cfg.train.seed``) and the split seed (``cfg.train.split_seed``,
            hence the identity split) are the same for every row.
        out_dir: each row trains into ``out_dir/<row>/``.
        rows: names from :data:`ABLATIONS` (default: all, in their order).
        cross_stores: ``{name: store path}`` of held-out sets for ``fake_recall_<name>``;
            ``None`` looks for the LAV-DF / DeepfakeTIMIT / DFDM stores beside ``store``
            (:func:`amdd_kit.evaluate.find_cross_stores`); ``{}`` skips them.
        progress: show fastai's progress bars.
        n_boot, boot_seed: draws and seed of the paired identity bootstrap
            (:func:`bootstrap_rows`), written to ``out_dir/bootstrap.json``.
        seeds: training seeds (``train.seed``; the split seed stays fixed, so every seed sees
            the same split). ``None``: the config's one seed, each row in ``out_dir/<row>/``.
            Several: each row trains once per seed into ``out_dir/<row>/seed<k>/``; the table
            holds the mean over seeds (``<metric>_seed_sd`` their spread, ``n_seeds``), every
            seed's values go to ``ablation_seeds.csv`` (:func:`seed_table`), and the bootstrap
            resamples the seeds with the identities (:func:`bootstrap_rows`).
        keep_weights: keep every row's ``model.pth``; by default it is deleted once the row is
            scored (the table, the bootstrap and the maps need only the scores and embeddings;
            a rerun reads them from the row's cache).

    Returns:
        DataFrame indexed by row name: ``description``, ``overrides``, ``status`` (``ok`` or
        ``failed: ...``), ``retrained``, the :data:`METRIC_COLUMNS`, ``attribution_source``,
        ``fake_recall_<set>`` per held-out set, ``n_test``, ``train_seconds``, ``same_split``.
        A row that fails is logged and kept with status ``failed: <reason>``; the other rows
        still run.
    """
    from .evaluate import find_cross_stores

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(rows) if rows else list(ABLATIONS)
    unknown = [r for r in rows if r not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown}; choose from {list(ABLATIONS)}")
    if cross_stores is None:
        cross_stores = find_cross_stores(store.path) if getattr(store, "path", None) else {}
    cross = {str(k): Path(v) for k, v in cross_stores.items()}

    seeds = [int(x) for x in seeds] if seeds else []
    records, per_seed = [], []
    for row in rows:
        rcfg = ablation_config(cfg, row)
        base = {"row": row, "description": DESCRIPTIONS.get(row, ""),
                "overrides": json.dumps(ABLATIONS[row], sort_keys=True)}
        try:
            if len(seeds) <= 1:
                one = rcfg.override({"train.seed": seeds[0]}) if seeds else rcfg
                recs = [_one_row(row, store, one, out_dir / row, cross, progress,
                                 keep_weights)]
                rec = recs[0]
            else:
                recs = [_one_row(row, store, rcfg.override({"train.seed": k}),
                                 out_dir / row / f"seed{k}", cross, progress, keep_weights)
                        for k in seeds]
                rec = _mean_over_seeds(recs)
            per_seed += [{"row": row, "seed": k, **r}
                         for k, r in zip(seeds or [cfg.train.seed], recs)]
            records.append({**base, "status": "ok", **rec})
        except Exception as e:  # one failing row must not lose the others
            log.exception("ablation row %s failed", row)
            records.append({**base, "status": f"failed: {type(e).__name__}: {e}",
                            "arch": rcfg.model.arch})
    table = pd.DataFrame(records).set_index("row")
    for col in METRIC_COLUMNS:
        if col not in table.columns:
            table[col] = float("nan")
    ok = [d for r in table.index[table["status"] == "ok"] for d in _seed_dirs(out_dir / r, seeds)]
    table["same_split"] = _same_split(ok)
    if not table["same_split"].all():
        log.warning("ablation rows were trained on different splits: compare with care")
    save_table(table, out_dir)
    if per_seed:
        pd.DataFrame(per_seed).to_csv(out_dir / SEEDS_FILE, index=False)
    scored = {}
    for r in table.index[table["status"] == "ok"]:
        parts = [pd.read_parquet(d / SCORED_FILE).assign(seed=k)
                 for k, d in zip(seeds or [cfg.train.seed], _seed_dirs(out_dir / r, seeds))
                 if (d / SCORED_FILE).exists()]
        if parts:
            scored[r] = pd.concat(parts, ignore_index=True)
    boot = bootstrap_rows(scored, n_boot=n_boot, seed=boot_seed) if scored else {}
    (out_dir / BOOT_FILE).write_text(json.dumps(_jsonable(boot)) + "\n")
    return table


def row_runs(out_dir: str | Path, row: str) -> list[Path]:
    """The run folders of one row as found on disk: ``out_dir/<row>/`` when it was trained
    once, else its ``seed<k>/`` folders in seed order."""
    d = Path(out_dir) / row
    if (d / "metrics.json").exists():
        return [d]
    return sorted(d.glob("seed*/"), key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)


def _seed_dirs(row_dir: Path, seeds: Sequence[int]) -> list[Path]:
    """The run folders of one row: itself for one seed, ``seed<k>/`` for several."""
    return [row_dir / f"seed{k}" for k in seeds] if len(seeds) > 1 else [row_dir]


def _mean_over_seeds(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One table row from the same row trained with several seeds: numbers averaged, the
    spread of each metric column as ``<metric>_seed_sd``, anything else from the first seed."""
    out: dict[str, Any] = {}
    for key in rows[0]:
        vals = [r.get(key) for r in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            arr = np.asarray(vals, dtype=float)
            out[key] = float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")
            if key in METRIC_COLUMNS:
                out[f"{key}_seed_sd"] = float(np.nanstd(arr)) if np.isfinite(arr).any() \
                    else float("nan")
        else:
            out[key] = vals[0]
    out["retrained"] = any(bool(r.get("retrained")) for r in rows)
    out["n_seeds"] = len(rows)
    return out


def load_bootstrap(out_dir: str | Path) -> dict[str, dict[str, list[float]]]:
    """Read ``out_dir/bootstrap.json`` back (``{}`` when it is missing)."""
    path = Path(out_dir) / BOOT_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def save_table(table: pd.DataFrame, out_dir: str | Path) -> None:
    """Write ``ablation.csv`` and ``ablation.json`` (records, NaN -> null)."""
    out_dir = Path(out_dir)
    table.to_csv(out_dir / "ablation.csv", index_label="row")
    recs = [{"row": r, **_jsonable(v)} for r, v in table.to_dict(orient="index").items()]
    (out_dir / "ablation.json").write_text(json.dumps(recs, indent=2) + "\n")


def load_table(out_dir: str | Path) -> pd.DataFrame:
    """Read ``out_dir/ablation.csv`` back (indexed by row name)."""
    return pd.read_csv(Path(out_dir) / "ablation.csv", index_col="row")


def seed_table(out_dir: str | Path, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """One metric per row (index) and training seed (columns) from ``ablation_seeds.csv``,
    with the spread across seeds (max - min) as a last column: how much a rerun with another
    seed moves the row."""
    long = pd.read_csv(Path(out_dir) / SEEDS_FILE)
    wide = long.pivot(index="row", columns="seed", values=metric)
    wide.columns = [f"seed {k}" for k in wide.columns]
    wide = wide.reindex([r for r in dict.fromkeys(long["row"])])
    return wide.assign(spread=wide.max(axis=1) - wide.min(axis=1))




# -- figures (built in amdd_kit.viz) ------------------------------------------------------------
def umap_panels(out_dir: str | Path, rows: Sequence[str] = ("full", "no_attribution"),
                seed: int = 0):
    """UMAP maps of the test shared embeddings of several rows, side by side, coloured by
    generator. Rows without ``embeddings.parquet`` are left out (logged)."""
    from .geometry import stack_column, umap_2d

    maps = {}
    for r in rows:
        runs = [d for d in row_runs(out_dir, r) if (d / "embeddings.parquet").exists()]
        if not runs:
            log.warning("umap_panels: no embeddings for row %s", r)
            continue
        df = pd.read_parquet(runs[0] / "embeddings.parquet")
        xy = umap_2d(stack_column(df, "embedding"), seed=seed)
        which = f" ({runs[0].name})" if runs[0].name.startswith("seed") else ""
        maps[f"{r}{which}: {DESCRIPTIONS.get(r, '')}"[:60]] = (df, xy)
    return embedding_panels(maps, "Shared embedding (test identities), UMAP, coloured by generator")

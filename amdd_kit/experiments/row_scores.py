"""What one ablation row scores, on the test identities: per clip, and resampled.

* ``balanced_accuracy``, ``auc`` -- real/fake detection (from the run's ``metrics.json``);
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
dropout all follow ``train.seed``), and test clips come in groups (about 16 per identity from a
handful of test identities), so a binomial standard error over clips is far too optimistic.
:func:`bootstrap_rows` resamples the **training seeds and the test identities** together (the
same draw for every row: the rows share seeds and split, so the comparison is paired) and
recomputes every metric with the scores of :mod:`amdd_kit.metrics` and :mod:`amdd_kit.geometry`.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..config import Config
from ..jsonio import as_float as _num

log = logging.getLogger(__name__)

#: Metrics recomputed on every bootstrap resample of the test identities.
BOOT_METRICS: tuple[str, ...] = ("balanced_accuracy", "attribution_accuracy", "probe_accuracy",
                                 "silhouette", "trace_probe_visual", "trace_probe_audio",
                                 "attribution_majority")

__all__ = ["BOOT_METRICS", "attribution_trained", "probe_predictions",
           "attribution_from_embeddings", "scored_clips", "sample_metrics", "bootstrap_rows",
           "embedding_scores", "row_metrics"]


def attribution_trained(cfg: Config) -> bool:
    """Whether the attribution head of a run with this config was trained (Eq. 2 weight > 0)."""
    return cfg.loss.w_attr > 0


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
    from ..geometry import linear_probe_predict, stack_column

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
    from ..config import METHOD_TRACES

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
    from ..geometry import silhouette, stack_column
    from ..metrics import attribution_majority_baseline, balanced_accuracy

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
    from ..geometry import silhouette, stack_column

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
    from ..metrics import attribution_majority_baseline

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


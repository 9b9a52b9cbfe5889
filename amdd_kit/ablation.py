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
* ``cmffc_alignment`` -- mean over generator classes of ``cos(mu^v_c, mu^a_c)``, the cosine
  between the visual and the audio fingerprint centroids (what CMFFC, Eq. 4, trains for);
* ``fake_recall_<set>`` and ``fake_recall_heldout`` -- the share of fakes called fake on each
  held-out store (generators never seen in training) and their mean.

Results go to ``out_dir/ablation.csv`` and ``out_dir/ablation.json``. The run is resumable: a row
whose run dir already holds ``metrics.json`` and a ``config.json`` equal to the row's config is
read, not retrained. :func:`paper_claims` turns the table into plain-language verdicts.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .config import Config
from .jsonio import jsonable as _jsonable

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
                                   "probe_accuracy", "silhouette", "cmffc_alignment",
                                   "fake_recall_heldout")

ROW_FILE = "ablation_row.json"         # per-row cache of the derived metrics
ROW_VERSION = 2                        # bump when row_metrics gains columns (invalidates caches)
TRAIN_EMBEDDINGS = "embeddings_train.parquet"  # per-row cache of the train-split embeddings

__all__ = ["ABLATIONS", "DESCRIPTIONS", "METRIC_COLUMNS", "ablation_config", "run_is_current",
           "attribution_from_embeddings", "embedding_scores", "row_metrics", "run_ablations",
           "load_table", "paper_claims"]


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


def attribution_from_embeddings(train_df: pd.DataFrame | None, test_df: pd.DataFrame,
                                column: str = "emb_shared", seed: int = 0) -> float:
    """Linear-probe attribution accuracy: logistic regression on frozen embeddings.

    Fitted on ``train_df[column]`` ``[N_train, d]`` with labels ``method_idx``, scored on
    ``test_df``. Returns NaN (logged) when it cannot be computed (no train embeddings, fewer than
    two generator classes in train, empty test).
    """
    from .geometry import linear_probe_accuracy, stack_column

    if train_df is None:
        return float("nan")
    tr, te = _known(train_df), _known(test_df)
    if len(te) == 0 or tr["method_idx"].nunique() < 2:
        log.warning("linear probe: need >= 2 generator classes in train and a non-empty test")
        return float("nan")
    return linear_probe_accuracy(stack_column(tr, column), tr["method_idx"].to_numpy(),
                                 stack_column(te, column), te["method_idx"].to_numpy(),
                                 seed=seed)


def embedding_scores(test_df: pd.DataFrame) -> dict[str, float]:
    """Geometry of the test embeddings: generator-cluster silhouette and CMFFC alignment.

    ``silhouette``: cosine silhouette of ``emb_shared`` grouped by ``method`` (-1..1).
    ``cmffc_alignment``: mean over classes of ``cos(mean f_v, mean f_a)`` per class (-1..1).
    """
    from .geometry import cluster_scores, cmffc_alignment, stack_column

    df = _known(test_df)
    if len(df) == 0:
        return {"silhouette": float("nan"), "cmffc_alignment": float("nan")}
    sil = cluster_scores(stack_column(df, "emb_shared"), df["method"].to_numpy(),
                         metric="cosine")["silhouette"]
    al = cmffc_alignment(stack_column(df, "fp_visual"), stack_column(df, "fp_audio"),
                         df["method"].to_numpy())
    return {"silhouette": float(sil),
            "cmffc_alignment": float(al["centroid_cos"].mean()) if len(al) else float("nan")}


def row_metrics(metrics: Mapping[str, Any], test_df: pd.DataFrame,
                train_df: pd.DataFrame | None, cfg: Config, seed: int = 0) -> dict[str, Any]:
    """One row of the ablation table from a run's ``metrics.json`` and embedding tables.

    ``metrics``: the run's metrics (``balanced_accuracy``, ``auc``, ``attribution_accuracy``,
    optional ``cross_dataset`` blocks with ``fake_recall``). ``test_df`` / ``train_df``:
    embeddings tables (``emb_shared``, ``fp_visual``, ``fp_audio``, ``method``, ``method_idx``)
    of the test and train splits. The attribution column comes from the head when ``cfg``
    trained it, else from the linear probe (``attribution_source`` says which).
    """
    probe = attribution_from_embeddings(train_df, test_df, seed=seed)
    head = attribution_trained(cfg)
    out: dict[str, Any] = {
        "arch": cfg.model.arch,
        "balanced_accuracy": _num(metrics.get("balanced_accuracy")),
        "auc": _num(metrics.get("auc")),
        "attribution_accuracy": _num(metrics.get("attribution_accuracy")) if head else probe,
        "attribution_source": "head" if head else "linear_probe",
        "probe_accuracy": probe,
        **embedding_scores(test_df),
        "attribution_majority": _majority_share(test_df),
        "n_test": int(metrics.get("n_test", len(test_df)) or 0),
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


def _majority_share(df: pd.DataFrame) -> float:
    """Share of the most frequent generator class among the known test clips: the accuracy of
    always answering that class, a stricter chance level than ``1 / n_classes``."""
    known = _known(df)
    return float(known["method_idx"].value_counts(normalize=True).max()) if len(known) \
        else float("nan")


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


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


def _one_row(row: str, store, cfg: Config, run_dir: Path, cross: Mapping[str, Path],
             progress: bool) -> dict[str, Any]:
    """Train (unless current), evaluate on the held-out stores, compute the row's metrics."""
    from .train import train

    store_path = getattr(store, "path", None)
    if run_is_current(run_dir, cfg, store_path):
        log.info("ablation %s: %s is current, not retrained", row, run_dir)
        trained = False
    else:
        for stale in (ROW_FILE, TRAIN_EMBEDDINGS):
            (run_dir / stale).unlink(missing_ok=True)
        train(store, cfg, run_dir, progress=progress)
        trained = True

    cache = run_dir / ROW_FILE
    if not trained and cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("config_hash") == cfg.hash() and cached.get("version") == ROW_VERSION and \
                sorted(cached.get("cross", [])) == sorted(cross):
            return {**cached["row"], "retrained": False}

    metrics = json.loads((run_dir / "metrics.json").read_text())
    if cross and not _cross_done(metrics, list(cross)):
        from .evaluate import evaluate_run
        metrics = evaluate_run(run_dir, store_path, cross_stores=dict(cross))
    test_df = pd.read_parquet(run_dir / "embeddings.parquet")
    train_df = _train_embeddings(run_dir, store, cfg)
    out = row_metrics(metrics, test_df, train_df, cfg, seed=cfg.train.seed)
    cache.write_text(json.dumps({"config_hash": cfg.hash(), "version": ROW_VERSION,
                                 "cross": sorted(cross),
                                 "row": _jsonable(out)}, indent=2) + "\n")
    return {**out, "retrained": trained}


def _same_split(run_dirs: Sequence[Path]) -> bool:
    """Do the finished runs share one identical ``splits.csv``?"""
    splits = [pd.read_csv(d / "splits.csv") for d in run_dirs if (d / "splits.csv").exists()]
    return all(s.equals(splits[0]) for s in splits[1:])


# -- the whole table ----------------------------------------------------------------------------
def run_ablations(store, cfg: Config, out_dir: str | Path, rows: Sequence[str] | None = None,
                  cross_stores: Mapping[str, str | Path] | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """Train and evaluate each ablation row; write ``out_dir/ablation.csv`` and ``.json``.

    Args:
        store: the training :class:`~amdd_kit.data.store.ClipStore` (same for every row).
        cfg: the base config; each row applies its :data:`ABLATIONS` overrides on top. The seed
            (``cfg.train.seed``) and therefore the identity split are the same for every row.
        out_dir: each row trains into ``out_dir/<row>/``.
        rows: names from :data:`ABLATIONS` (default: all, in their order).
        cross_stores: ``{name: store path}`` of held-out sets for ``fake_recall_<name>``;
            ``None`` looks for the LAV-DF / DeepfakeTIMIT / DFDM stores beside ``store``
            (:func:`amdd_kit.evaluate.find_cross_stores`); ``{}`` skips them.
        progress: show fastai's progress bars.

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

    records = []
    for row in rows:
        rcfg = ablation_config(cfg, row)
        base = {"row": row, "description": DESCRIPTIONS.get(row, ""),
                "overrides": json.dumps(ABLATIONS[row], sort_keys=True)}
        try:
            records.append({**base, "status": "ok",
                            **_one_row(row, store, rcfg, out_dir / row, cross, progress)})
        except Exception as e:  # one failing row must not lose the others
            log.exception("ablation row %s failed", row)
            records.append({**base, "status": f"failed: {type(e).__name__}: {e}",
                            "arch": rcfg.model.arch})
    table = pd.DataFrame(records).set_index("row")
    for col in METRIC_COLUMNS:
        if col not in table.columns:
            table[col] = float("nan")
    ok = [out_dir / r for r in table.index[table["status"] == "ok"]]
    table["same_split"] = _same_split(ok)
    if not table["same_split"].all():
        log.warning("ablation rows were trained on different splits: compare with care")
    save_table(table, out_dir)
    return table


def save_table(table: pd.DataFrame, out_dir: str | Path) -> None:
    """Write ``ablation.csv`` and ``ablation.json`` (records, NaN -> null)."""
    out_dir = Path(out_dir)
    table.to_csv(out_dir / "ablation.csv", index_label="row")
    recs = [{"row": r, **_jsonable(v)} for r, v in table.to_dict(orient="index").items()]
    (out_dir / "ablation.json").write_text(json.dumps(recs, indent=2) + "\n")


def load_table(out_dir: str | Path) -> pd.DataFrame:
    """Read ``out_dir/ablation.csv`` back (indexed by row name)."""
    return pd.read_csv(Path(out_dir) / "ablation.csv", index_col="row")




# -- what the numbers say about the paper's claims ----------------------------------------------
def _se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` clips (binomial)."""
    if not (math.isfinite(p) and n > 0):
        return float("nan")
    return math.sqrt(max(p * (1 - p), 1.0 / n) / n)


def _compare(a: float, b: float, tol: float) -> str:
    """``"higher"`` when a > b + tol, ``"lower"`` when a < b - tol, else ``"same"``; or
    ``"unknown"`` when a value is missing."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return "unknown"
    if a > b + tol:
        return "higher"
    if a < b - tol:
        return "lower"
    return "same"


def paper_claims(table: pd.DataFrame, n_classes: int = 7, silhouette_tol: float = 0.02
                 ) -> pd.DataFrame:
    """Check the paper's claims against an ablation table, in plain words.

    A difference between two accuracies counts only when it exceeds twice the binomial standard
    error of the accuracies on ``n_test`` clips (``2 * sqrt(p(1-p)/n)``), so small test sets give
    honest "cannot tell" answers; silhouette and alignment differences must exceed
    ``silhouette_tol``. Rows missing from the table give ``verdict = "not run"``.

    Returns a DataFrame with columns ``claim``, ``paper``, ``ours``, ``verdict``
    (``supported`` / ``not supported`` / ``cannot tell`` / ``not run``) and ``why``.
    """
    t = table[table["status"].astype(str) == "ok"] if "status" in table.columns else table
    chance = 1.0 / n_classes

    def val(row: str, col: str) -> float:
        return _num(t.at[row, col]) if row in t.index and col in t.columns else float("nan")

    def tol_acc(row_a: str, row_b: str, col: str) -> float:
        n = int(_num(t.at[row_a, "n_test"])) if row_a in t.index and "n_test" in t.columns \
            and math.isfinite(_num(t.at[row_a, "n_test"])) else 0
        ses = [_se(val(r, col), n) for r in (row_a, row_b)]
        return 2 * math.sqrt(sum(s * s for s in ses)) if all(math.isfinite(s) for s in ses) \
            else float("nan")

    claims = []

    def add(claim, paper, ours, verdict, why):
        claims.append({"claim": claim, "paper": paper, "ours": ours, "verdict": verdict,
                       "why": why})

    n_full = int(_num(t.at["full", "n_test"])) if "full" in t.index and "n_test" in t.columns \
        and math.isfinite(_num(t.at["full", "n_test"])) else 0

    # 0. sanity: did the model learn to detect at all? (otherwise the rest is about noise)
    b = val("full", "balanced_accuracy")
    claim = "AMDD detects fakes better than chance (sanity check)"
    if not math.isfinite(b):
        add(claim, "yes", "-", "not run", "the 'full' row is missing")
    else:
        margin = 2 * _se(0.5, n_full) if n_full else 0.05
        ok = b > 0.5 + margin
        add(claim, "yes", f"balanced accuracy {b:.1%}", "supported" if ok else "not supported",
            "chance is 50 %" + ("" if ok else "; the model is undertrained (more epochs?), so "
                                "the comparisons below mostly compare noise"))

    # 1. full AMDD attributes generators well above chance
    a = val("full", "attribution_accuracy")
    if not math.isfinite(a):
        add("AMDD attributes fakes to their generator", "95.9 %", "-", "not run",
            "the 'full' row is missing")
    else:
        maj = val("full", "attribution_majority")
        base = max(chance, maj) if math.isfinite(maj) else chance
        margin = 2 * _se(base, n_full) if n_full else 0.05
        v = "supported" if a > base + margin else "not supported"
        add("AMDD attributes fakes to their generator", "95.9 %", f"{a:.1%}", v,
            f"chance is {base:.1%} (1/{n_classes}, or always naming the most frequent class); "
            f"ours is {'clearly above' if v == 'supported' else 'not clearly above'} it")

    # 2. without the attribution loss, attribution collapses (probe on the frozen embedding)
    for other, label in (("no_attribution", "without the attribution loss"),
                         ("detection_only", "with real/fake labels only")):
        f, o = val("full", "probe_accuracy"), val(other, "probe_accuracy")
        claim = f"Attribution collapses {label} (probe on the shared embedding)"
        if not math.isfinite(o):
            add(claim, "95.9 % -> 11.0 %", "-", "not run", f"the '{other}' row is missing")
            continue
        c = _compare(o, f, tol_acc(other, "full", "probe_accuracy"))
        verdict = {"lower": "supported", "same": "not supported", "higher": "not supported",
                   "unknown": "cannot tell"}[c]
        why = {"lower": "the embedding holds clearly less generator information",
               "same": "the difference is within noise: the embedding still separates the "
                       "generators about as well",
               "higher": "the embedding separates the generators even better",
               "unknown": "a value is missing"}[c]
        add(claim, "95.9 % -> 11.0 %", f"{f:.1%} -> {o:.1%} (probe)", verdict,
            why + f" (the head itself is untrained there, so it sits near chance, "
                  f"{chance:.0%}: that part of the drop is true by construction)")

    # 3. clusters are clearer with attribution supervision (silhouette)
    for other in ("no_attribution", "detection_only"):
        f, o = val("full", "silhouette"), val(other, "silhouette")
        claim = f"Generator clusters are clearer with attribution supervision (vs {other})"
        if not math.isfinite(o):
            add(claim, "clearer clusters", "-", "not run", f"the '{other}' row is missing")
            continue
        c = _compare(f, o, silhouette_tol)
        add(claim, "clearer clusters", f"silhouette {f:.3f} vs {o:.3f}",
            {"higher": "supported", "same": "cannot tell", "lower": "not supported",
             "unknown": "cannot tell"}[c],
            f"a silhouette difference must exceed {silhouette_tol} to count")

    # 4. every auxiliary term helps (detection and attribution do not get better without it)
    for other, term in (("no_cmffc", "CMFFC (Eq. 4)"), ("no_contrastive", "contrastive (Eq. 3)"),
                        ("no_centroid", "centroid (Eq. 5)")):
        claim = f"The {term} term helps"
        if other not in t.index or "full" not in t.index:
            add(claim, "each term helps", "-", "not run", f"the '{other}' or 'full' row is missing")
            continue
        parts, cmp = [], []
        for col in ("balanced_accuracy", "attribution_accuracy"):
            c = _compare(val("full", col), val(other, col), tol_acc("full", other, col))
            cmp.append(c)
            parts.append(f"{col.replace('_', ' ')} {val('full', col):.1%} with vs "
                         f"{val(other, col):.1%} without")
        verdict = "supported" if "higher" in cmp and "lower" not in cmp else \
            "not supported" if "lower" in cmp else "cannot tell"
        add(claim, "each term helps", "; ".join(parts), verdict,
            "a difference counts when it exceeds twice its standard error")

    # 5. CMFFC aligns the visual and audio fingerprints
    f, o = val("full", "cmffc_alignment"), val("no_cmffc", "cmffc_alignment")
    claim = "CMFFC makes the visual and audio fingerprints of a generator agree"
    if not math.isfinite(o):
        add(claim, "aligned fingerprints", "-", "not run", "the 'no_cmffc' row is missing")
    else:
        c = _compare(f, o, silhouette_tol)
        add(claim, "aligned fingerprints", f"centroid cosine {f:.3f} with vs {o:.3f} without",
            {"higher": "supported", "same": "cannot tell", "lower": "not supported",
             "unknown": "cannot tell"}[c], f"a difference must exceed {silhouette_tol}")

    # 6. AMDD beats CAD
    claim = "AMDD outperforms CAD"
    if "cad" not in t.index or "full" not in t.index:
        add(claim, "AMDD > CAD", "-", "not run", "the 'cad' or 'full' row is missing")
    else:
        cmp, parts = [], []
        for col in ("balanced_accuracy", "attribution_accuracy", "fake_recall_heldout"):
            a, b = val("full", col), val("cad", col)
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            cmp.append(_compare(a, b, tol_acc("full", "cad", col)))
            parts.append(f"{col.replace('_', ' ')} {a:.1%} vs {b:.1%}")
        verdict = "supported" if "higher" in cmp and "lower" not in cmp else \
            "not supported" if "lower" in cmp else "cannot tell"
        add(claim, "AMDD > CAD", "; ".join(parts) or "-", verdict,
            "AMDD first, CAD second; a difference counts when it exceeds twice its standard error")
    return pd.DataFrame(claims, columns=["claim", "paper", "ours", "verdict", "why"])


# -- figures ------------------------------------------------------------------------------------
METRIC_LABELS: dict[str, str] = {
    "balanced_accuracy": "balanced accuracy (detection)",
    "auc": "ROC AUC (detection)",
    "attribution_accuracy": "attribution accuracy (head; probe where the head was untrained)",
    "probe_accuracy": "linear-probe attribution accuracy (shared embedding)",
    "silhouette": "silhouette of the generator clusters (cosine)",
    "cmffc_alignment": "CMFFC alignment: cos(visual, audio fingerprint centroids)",
    "fake_recall_heldout": "fake recall on held-out generators (mean over sets)",
}


def metric_figure(table: pd.DataFrame, metric: str):
    """Bar chart of one metric across the ablation rows (failed rows show as gaps).

    Reference lines: chance for the accuracies (0.5 for detection, 1/7 for attribution).
    """
    import plotly.graph_objects as go

    vals = pd.to_numeric(table[metric], errors="coerce") if metric in table.columns \
        else pd.Series(np.nan, index=table.index)
    colors = ["#d62728" if r == "cad" else "#1f77b4" if r == "full" else "#7f7f7f"
              for r in table.index]
    fig = go.Figure(go.Bar(x=[str(r) for r in table.index], y=vals, marker_color=colors,
                           text=["n/a" if not np.isfinite(v) else f"{v:.3f}" for v in vals],
                           textposition="outside"))
    chance = {"balanced_accuracy": 0.5, "auc": 0.5, "attribution_accuracy": 1 / 7,
              "probe_accuracy": 1 / 7}.get(metric)
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dash", line_color="grey",
                      annotation_text=f"chance {chance:.2f}")
    lo = -1.05 if metric in ("silhouette", "cmffc_alignment") else 0
    fig.update_layout(title=METRIC_LABELS.get(metric, metric), yaxis=dict(range=[lo, 1.1]),
                      width=640, height=400, showlegend=False)
    return fig


def umap_panels(out_dir: str | Path, rows: Sequence[str] = ("full", "no_attribution"),
                seed: int = 0):
    """UMAP maps of the test shared embeddings of several rows, side by side, coloured by
    generator. Rows without ``embeddings.parquet`` are left out (logged)."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    from .geometry import stack_column, umap_2d
    from .viz import METHOD_COLORS

    out_dir = Path(out_dir)
    found = [r for r in rows if (out_dir / r / "embeddings.parquet").exists()]
    for r in set(rows) - set(found):
        log.warning("umap_panels: no embeddings for row %s", r)
    fig = make_subplots(rows=1, cols=max(len(found), 1),
                        subplot_titles=[f"{r}: {DESCRIPTIONS.get(r, '')}"[:60] for r in found])
    for j, row in enumerate(found, start=1):
        df = pd.read_parquet(out_dir / row / "embeddings.parquet")
        xy = umap_2d(stack_column(df, "emb_shared"), seed=seed)
        for method in [m for m in METHOD_COLORS if m in set(df["method"])]:
            sel = (df["method"] == method).to_numpy()
            fig.add_trace(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=method,
                                     legendgroup=method, showlegend=j == 1,
                                     marker=dict(size=6, color=METHOD_COLORS[method])),
                          row=1, col=j)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(title="Shared embedding (test identities), UMAP, coloured by generator",
                      width=480 * max(len(found), 1), height=480)
    return fig

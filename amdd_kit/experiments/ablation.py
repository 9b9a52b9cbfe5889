"""Loss ablations and the CAD comparison: train one run per row, then compare them in one table.

The AMDD paper claims that attribution supervision *shapes the embedding*: without the
attribution loss, attribution accuracy falls from 95.9 % to 11.0 % and the per-generator clusters
blur. This module lets a class test such claims instead of taking them on trust.

Each row of :data:`ABLATIONS` is a set of config overrides on top of the base config
(``{"loss.w_attr": 0.0}`` switches Eq. 2 off, ...). :func:`run_ablations` trains every row on the
**same clip store, the same identity split and the same seeds**, each into ``out_dir/<row>/``
(``out_dir/<row>/seed<k>/`` with several seeds), and scores it on the test identities
(:mod:`amdd_kit.experiments.row_scores`: the table's columns and the paired bootstrap).
:func:`amdd_kit.claims.paper_claims` turns the table and the bootstrap into plain-language
verdicts.

Results go to ``out_dir/ablation.csv``, ``out_dir/ablation.json`` (means over the seeds),
``out_dir/ablation_seeds.csv`` (every row and seed) and the bootstrap draws to
``out_dir/bootstrap.json``. The run is resumable: a row whose run dir already holds
``metrics.json`` and a ``config.json`` equal to the row's config is read, not retrained
(:func:`amdd_kit.experiments.runs.run_is_current`).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..config import Config
from ..jsonio import jsonable as _jsonable
from ..viz import embedding_panels
from .row_scores import bootstrap_rows, row_metrics, scored_clips
from .runs import TRAIN_EMBEDDINGS, train_embeddings, train_or_reuse

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
BOOT_FILE = "bootstrap.json"
SEEDS_FILE = "ablation_seeds.csv"     # one line per (row, training seed): the per-seed values
SCORED_FILE = "scored_test.parquet"   # per-row per-clip scores the bootstrap resamples

ROW_FILE = "ablation_row.json"         # per-row cache of the derived metrics
ROW_VERSION = 4                        # bump when row_metrics gains columns (invalidates caches)

__all__ = ["ABLATIONS", "DESCRIPTIONS", "METRIC_COLUMNS", "ablation_config", "run_ablations",
           "row_runs", "load_table", "save_table", "load_bootstrap", "seed_table", "umap_panels"]


# -- configs ------------------------------------------------------------------------------------
def ablation_config(cfg: Config, row: str) -> Config:
    """The config of one ablation row: ``cfg`` with ``ABLATIONS[row]`` applied (a copy)."""
    if row not in ABLATIONS:
        raise ValueError(f"unknown ablation row {row!r}; choose from {list(ABLATIONS)}")
    return cfg.override(ABLATIONS[row])


# -- one row ------------------------------------------------------------------------------------
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
    from ..train import history_line

    store_path = getattr(store, "path", None)
    cached = _cached_row(run_dir, cfg, cross, store_path)
    if cached is not None:
        log.info("ablation %s: %s is scored and current, not retrained", row, run_dir)
        return {**cached, "retrained": False}
    t0 = time.time()
    learn = train_or_reuse(store, cfg, run_dir, progress,
                           stale=(ROW_FILE, TRAIN_EMBEDDINGS, SCORED_FILE))
    trained = learn is not None
    if trained:
        print(f"{row:15s} seed {cfg.train.seed}: {cfg.train.epochs} epochs in "
              f"{time.time() - t0:.0f} s; {history_line(learn)}", flush=True)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    if cross and not _cross_done(metrics, list(cross)):
        from ..evaluate import evaluate_run
        metrics = evaluate_run(run_dir, store_path, cross_stores=dict(cross))
    test_df = pd.read_parquet(run_dir / "embeddings.parquet")
    train_df = train_embeddings(run_dir, store, cfg)
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
    from ..evaluate import find_cross_stores

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
    from ..geometry import stack_column, umap_2d

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

"""Open-set attribution: can the model say "none of the generators I know"? (issue 21)

    python benchmarks/bench_open_set.py --data data/synthetic --out runs/bench_open_set

Two protocols, every rejection score of :mod:`amdd_kit.openset_scores` beside maximum softmax
(msp):

(a) **cross-dataset** -- one run trained on the whole corpus; the fakes of the held-out LAV-DF,
    DeepfakeTIMIT and DFDM stores (generators unseen by construction) against the known test
    clips;
(b) **leave one generator out** -- for each of the six fake methods, a run trained with
    ``train.holdout_methods=[method]``; that method's clips against the known test clips. The
    mean AUROC over the six folds is the headline: does the recommended score beat msp?

The recommended score is fixed by a rule before anything is measured
(:func:`amdd_kit.openset_scores.recommended_score`: the centroid distance for a run trained with
the centroid loss), and each threshold keeps 95 % of the validation clips of known generators.
Also printed: the cheap stand-in for (b) that notebook 05 falls back on (remove a class from the
open set of the run of (a), no retraining), to show how optimistic it is.

Missing stores are made first (``make-data --size tiny`` + ``preprocess``, a few minutes); a run
whose folder already holds a finished run of the same config is reused, not retrained (each
tiny training takes about 1.5-3 minutes on 2 CPU cores). Writes ``OUT/open_set_table.csv``
(one row per protocol, set and score) and ``OUT/open_set_bench.json`` (the summary), which
notebook 05 reads.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from amdd_kit.config import METHODS, get_config
from amdd_kit.data.store import ClipStore, store_dir
from amdd_kit.evaluate import CROSS_DATASETS, evaluate_run
from amdd_kit.jsonio import write_json
from amdd_kit.openset import load_open_set
from amdd_kit.openset_eval import class_removal_table
from amdd_kit.openset_scores import BASELINE, SCORES

FAKE_METHODS = [m for m in METHODS if m != "real"]
METRICS = ("auroc", "fpr_at_95tpr", "oscr", "open_set_accuracy", "known_kept",
           "unknown_rejected")


def ensure_stores(data: Path, config: str, workers: int) -> dict[str, Path]:
    """The training store and the held-out stores, made when missing."""
    from amdd_kit.data.preprocess import preprocess_dataset
    from amdd_kit.data.synthetic import make_corpus

    paths = {name: store_dir(data, name, config) for name in ("fakeavceleb", *CROSS_DATASETS)}
    if all((p / "manifest.parquet").exists() for p in paths.values()):
        return paths
    roots = make_corpus(data, size="tiny" if config == "tiny" else "standard", progress=True)
    cfg = get_config(config)
    for name, path in paths.items():
        if not (path / "manifest.parquet").exists():
            preprocess_dataset(name, roots[name], path, cfg.data, workers=workers)
    return paths


def trained_run(store: Path, cfg, run_dir: Path) -> float:
    """Train ``cfg`` into ``run_dir`` unless it already holds that run; seconds spent."""
    from amdd_kit.experiments.runs import run_is_current
    from amdd_kit.train import train

    if run_is_current(run_dir, cfg, store):
        print(f"  {run_dir.name}: reused")
        return 0.0
    t0 = time.perf_counter()
    train(ClipStore(store), cfg, run_dir, progress=False)
    dt = time.perf_counter() - t0
    print(f"  {run_dir.name}: trained in {dt:.0f} s")
    return dt


def rows_of(protocol: str, name: str, entry: dict, recommended: str) -> list[dict]:
    """Long-format rows of one set of unknown clips (an ``open_set`` block entry)."""
    return [{"protocol": protocol, "set": name, "score": s, "recommended": s == recommended,
             "n_known": entry["n_known"], "n_unknown": entry["n_unknown"],
             **{m: entry["scores"][s].get(m) for m in METRICS}} for s in SCORES]


def print_table(df: pd.DataFrame, title: str) -> None:
    print(f"\n{title}")
    if df.empty:
        print("  (nothing)")
        return
    for metric in ("auroc", "fpr_at_95tpr", "oscr", "open_set_accuracy"):
        wide = df.pivot_table(index="set", columns="score", values=metric, sort=False)
        wide = wide[[s for s in SCORES if s in wide.columns]]
        if metric == "auroc":
            wide.loc["mean"] = wide.mean()
        print(f"  {metric}" + (" (lower is better)" if metric.startswith("fpr") else ""))
        print("    " + wide.round(3).to_string().replace("\n", "\n    "))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synthetic", help="data dir (stores made if missing)")
    ap.add_argument("--out", default="runs/bench_open_set", help="folder of the runs and tables")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--methods", nargs="*", default=FAKE_METHODS,
                    help="the methods left out, one run each (default: all six fake methods)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0: torch's default; 1 wastes less on a busy machine)")
    a = ap.parse_args()
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bad = sorted(set(a.methods) - set(FAKE_METHODS))
    if bad:
        raise SystemExit(f"unknown methods {bad}; choose from {FAKE_METHODS}")
    stores = ensure_stores(data, a.config, a.workers)
    overrides = {"train.epochs": a.epochs} if a.epochs else {}
    base_cfg = get_config(a.config, overrides)
    t_start = time.perf_counter()
    rows: list[dict] = []

    print("(a) cross-dataset: one run on the whole corpus")
    base = out / "base"
    trained_run(stores["fakeavceleb"], base_cfg, base)
    cross = {k: v for k, v in stores.items() if k != "fakeavceleb"}
    m = evaluate_run(base, stores["fakeavceleb"], cross_stores=cross, open_set=True)
    block = m["open_set"]
    recommended = block["recommended"]
    for name, entry in block.get("cross_dataset", {}).items():
        rows += rows_of("cross_dataset", name, entry, recommended)
    known_rejected = {name: e.get("known_elsewhere_rejected")
                      for name, e in block.get("cross_dataset", {}).items()}

    print("stand-in for (b) without retraining: classes removed from the open set of (a)")
    os_base = load_open_set(base)
    proxy = class_removal_table(os_base, pd.read_parquet(base / "embeddings.parquet"),
                                classes=a.methods)
    for (held, score), r in proxy.iterrows():
        rows.append({"protocol": "class_removal", "set": held, "score": score,
                     "recommended": score == recommended, "n_known": r["n_known"],
                     "n_unknown": r["n_unknown"], **{k: r.get(k) for k in METRICS}})

    print("(b) leave one generator out: one run per method")
    for method in a.methods:
        cfg = base_cfg.override({"train.holdout_methods": [method]})
        run = out / f"loo-{method}"
        trained_run(stores["fakeavceleb"], cfg, run)
        m = evaluate_run(run, stores["fakeavceleb"], cross_stores={}, open_set=True)
        entry = m["open_set"].get("unseen_generators", {}).get(method)
        if entry is None:
            print(f"  {method}: no test clips of the held-out method")
            continue
        rows += rows_of("leave_one_out", method, entry, m["open_set"]["recommended"])

    table = pd.DataFrame(rows)
    table.to_csv(out / "open_set_table.csv", index=False)
    print_table(table[table.protocol == "cross_dataset"],
                "(a) held-out sets' fakes vs the known test clips")
    print_table(table[table.protocol == "leave_one_out"],
                "(b) leave one generator out: its clips vs the known test clips")
    print_table(table[table.protocol == "class_removal"],
                "stand-in for (b): the class removed from the open set only (optimistic)")
    print("\nshare of the held-out sets' *reals* rejected (a known class, another dataset; "
          f"the thresholds reject {1 - os_base.tpr:.0%} of known validation clips):")
    for name, rej in known_rejected.items():
        if rej:
            print(f"  {name} (n={rej['n']}): " +
                  ", ".join(f"{s} {rej[s]:.2f}" for s in SCORES))

    loo = table[table.protocol == "leave_one_out"]
    mean = loo.groupby("score")["auroc"].mean().to_dict() if len(loo) else {}
    summary = {
        "recommended": recommended, "baseline": BASELINE,
        "rule": block.get("rule"), "tpr": block.get("tpr"), "k": block.get("k"),
        "loo_mean_auroc": mean,
        "loo_folds": sorted(set(loo["set"])) if len(loo) else [],
        "cross_mean_auroc": table[table.protocol == "cross_dataset"]
        .groupby("score")["auroc"].mean().to_dict(),
        "class_removal_mean_auroc": table[table.protocol == "class_removal"]
        .groupby("score")["auroc"].mean().to_dict(),
        "known_elsewhere_rejected": known_rejected,
        "config": a.config, "epochs": base_cfg.train.epochs,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    if mean:
        rec, msp = mean.get(recommended, np.nan), mean.get(BASELINE, np.nan)
        summary["recommended_beats_baseline"] = bool(rec > msp)
        print(f"\nmean AUROC over {len(summary['loo_folds'])} leave-one-out folds: "
              f"recommended ({recommended}) {rec:.3f} vs {BASELINE} {msp:.3f} -> "
              f"{'beats' if rec > msp else 'does NOT beat'} maximum softmax")
    write_json(out / "open_set_bench.json", summary)
    print(f"wrote {out / 'open_set_table.csv'} and {out / 'open_set_bench.json'} "
          f"({summary['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

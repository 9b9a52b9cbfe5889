"""Reproducibility as a measured property: the lessons of notebooks 03 and 06 on corpora rendered
with different seeds, and the full model trained with several seeds on each.

    .venv/bin/python benchmarks/bench_reproducible.py --out /tmp/repro            # 3 corpora
    .venv/bin/python benchmarks/bench_reproducible.py --out /tmp/repro --corpora 5 --train-seeds 42 1 2

For each corpus seed ``c`` it runs the series' notebooks 01 (render and preprocess the tiny
corpus with ``seed = c``), 03 (train AMDD, ``lr_find`` on) and 06 (the ablation with its default
rows, seeds and epochs) into ``OUT/corpus<c>/``, then trains the full model again the way
``amdd-kit train`` does (:func:`amdd_kit.train.train`) once per ``--train-seeds`` on the same
store. Finished parts are reused when the command is run again. It prints

1. every training: test balanced accuracy, AUC and attribution accuracy against the goals
   (0.95 / 0.98 / 0.90), and the lowest validation balanced accuracy after the third epoch
   (goal: above 0.6, no fall back in mid-training);
2. notebook 03 against ``amdd-kit train`` with the same seed on the same store (the same numbers);
3. the spread (max - min) of each headline figure across the corpora (goal <= 0.03);
4. every verdict of notebook 06 per corpus, the flips (supported in one run, contradicted in
   another; goal 0) and how many verdicts differ between runs (goal <= 2 of 16).

Nothing here is a test: it takes about an hour on 2 CPU cores. The time of each part is printed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

GOALS = {"balanced_accuracy": 0.95, "auc": 0.98, "attribution_accuracy": 0.90}
HEADLINE = tuple(GOALS)
SPREAD_GOAL, FALLBACK = 0.03, 0.6


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def lowest_after_third(run: Path) -> float:
    """Lowest validation balanced accuracy from the fourth epoch on (``history.csv``)."""
    hist = pd.read_csv(run / "history.csv")
    late = hist.loc[hist["epoch"] >= 3, "bal_acc"]
    return float(late.min()) if len(late) else float("nan")


def series(root: Path, c: int, config: str, notebooks: list[str], params: dict) -> None:
    """Run ``notebooks`` of the series for corpus seed ``c`` into ``root/run`` (data in ``root/data``)."""
    from amdd_kit.series import run_series

    t0 = time.time()
    res = run_series(root / "run", config, root / "data", params={"seed": c, **params},
                     notebooks=notebooks, export=False, runs_dir=root, progress=False)
    if not res.ok:
        raise SystemExit(f"corpus {c}: {res.error}")
    print(f"corpus {c}: notebook(s) {' '.join(notebooks)} in {time.time() - t0:.0f} s", flush=True)


def run_corpus(c: int, out: Path, a: argparse.Namespace) -> dict[str, Path]:
    """Notebooks 01 and 03, then the extra trainings, then notebook 06, for one corpus.

    A part whose outputs exist is reused. Returns the training runs found (name -> run dir).
    """
    from amdd_kit.config import get_config
    from amdd_kit.data.store import ClipStore, store_dir
    from amdd_kit.train import train

    root = out / f"corpus{c}"
    data, run = root / "data", root / "run"
    if not (store_dir(data, "fakeavceleb", a.config) / "manifest.parquet").exists():
        series(root, c, a.config, ["01"], {"datasets": ["fakeavceleb"]})
    if not (run / "metrics.json").exists():
        series(root, c, a.config, ["03"], {})
    runs = {"notebook 03": run}
    store = ClipStore(store_dir(data, "fakeavceleb", a.config))
    for s in a.train_seeds:
        dst = root / f"train-seed{s}"
        if not (dst / "metrics.json").exists():
            t0 = time.time()
            train(store, get_config(a.config, {"train.seed": s}), dst, progress=False)
            print(f"corpus {c}: amdd-kit train, seed {s}, in {time.time() - t0:.0f} s",
                  flush=True)
        runs[f"train seed {s}"] = dst
    return runs


def run_ablation(c: int, out: Path, a: argparse.Namespace) -> None:
    """Notebook 06 (the ablation rows ``--rows`` with seeds ``--ablation-seeds``) on one corpus."""
    if not (out / f"corpus{c}" / "run" / "ablations" / "claims.json").exists():
        params = {"rows": a.rows, "shortcut_audit": False}
        if a.ablation_seeds is not None:
            params["seeds"] = a.ablation_seeds
        series(out / f"corpus{c}", c, a.config, ["06"], params)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/reproducible", help="where corpora and runs go")
    ap.add_argument("--corpora", type=int, default=3, help="corpus seeds 0..N-1")
    ap.add_argument("--train-seeds", type=int, nargs="*", default=[42, 1, 2],
                    help="training seeds of the extra runs (42: the config's, as notebook 03)")
    ap.add_argument("--rows", nargs="*", default=[],
                    help="ablation rows of notebook 06 (default: all of them)")
    ap.add_argument("--ablation-seeds", type=int, nargs="*", default=None,
                    help="training seeds per ablation row (default: notebook 06's)")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing; print the figures of the parts already finished")
    ap.add_argument("--config", default="tiny")
    a = ap.parse_args()
    out = Path(a.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    from amdd_kit.config import get_config
    default_seed = get_config(a.config).train.seed

    if not a.report_only:  # the trainings first on every corpus, then the (longer) ablations
        for c in range(a.corpora):
            run_corpus(c, out, a)
        for c in range(a.corpora):
            run_ablation(c, out, a)

    lines, verdicts, headline = [], {}, {}
    for c in range(a.corpora):
        root = out / f"corpus{c}"
        runs = {name: run for name, run in [("notebook 03", root / "run")] + [
            (f"train seed {s}", root / f"train-seed{s}") for s in a.train_seeds]
            if (run / "metrics.json").exists()}
        if "notebook 03" not in runs:
            continue
        for name, run in runs.items():
            m = _metrics(run)
            lines.append({"corpus": c, "run": name, **{k: m.get(k) for k in HEADLINE},
                          "lowest valid bal. acc. after epoch 3": lowest_after_third(run),
                          "train s": m.get("train_seconds")})
        headline[c] = _metrics(runs["notebook 03"])
        claims_file = runs["notebook 03"] / "ablations" / "claims.json"
        if claims_file.exists():
            verdicts[c] = {x["claim"]: x["verdict"] for x in json.loads(claims_file.read_text())}
        same = runs.get(f"train seed {default_seed}")
        if same is not None:
            a3, at = headline[c], _metrics(same)
            equal = all(a3.get(k) == at.get(k) for k in HEADLINE)
            lines[-len(runs)]["same as amdd-kit train"] = "yes" if equal else "NO"

    if not lines:
        print(f"nothing finished under {out} yet")
        return 0
    pd.set_option("display.width", 160)
    table = pd.DataFrame(lines)
    print("\n== 1. every training (goals: %s; valid bal. acc. after epoch 3 > %.1f) ==" % (
        ", ".join(f"{k} >= {v}" for k, v in GOALS.items()), FALLBACK))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    met = all((table[k] >= g).all() for k, g in GOALS.items())
    steady = bool((table["lowest valid bal. acc. after epoch 3"] > FALLBACK).all())
    print(f"every run meets the goals: {'MET' if met else 'not met'}; "
          f"no fall back after epoch 3: {'MET' if steady else 'not met'}")

    print("\n== 2. notebook 03 vs amdd-kit train, same seed, same store ==")
    col = table.get("same as amdd-kit train")
    if col is None:
        print(f"not measured: no extra training with seed {default_seed} (--train-seeds)")
    else:
        print("identical headline figures on every corpus:",
              "yes" if (col.dropna() == "yes").all() else "NO")

    print(f"\n== 3. spread across {a.corpora} corpora (notebook 03; goal <= {SPREAD_GOAL}) ==")
    for k in HEADLINE:
        vals = np.array([headline[c].get(k, np.nan) for c in headline], float)
        spread = float(np.nanmax(vals) - np.nanmin(vals))
        print(f"{k:24s} {' '.join(f'{v:.3f}' for v in vals)}  spread {spread:.3f}  "
              f"{'MET' if spread <= SPREAD_GOAL else 'not met'}")
    files = {c: out / f"corpus{c}" / "run" / "ablations" / "ablation_seeds.csv" for c in headline}
    abl = {c: pd.read_csv(f) for c, f in files.items() if f.exists()}
    if abl:
        print("\nablation rows per corpus and training seed: balanced accuracy / attribution accuracy")
        cells = {}
        for c, t in abl.items():
            for _, r in t.iterrows():
                cells.setdefault(r["row"], {})[f"corpus {c} seed {r['seed']}"] = (
                    f"{r['balanced_accuracy']:.3f} / {r['attribution_accuracy']:.3f}")
        print(pd.DataFrame(cells).T.to_string())

    print("\n== 4. the verdicts of notebook 06 per corpus ==")
    if not verdicts:
        print("no corpus has finished notebook 06 yet")
        return 0
    v = pd.DataFrame(verdicts)
    v = v[~(v == "not run").any(axis=1)]  # claims whose rows were not part of this run
    v.columns = [f"corpus {c}" for c in v.columns]
    print(v.to_string())
    differ = [cl for cl in v.index if v.loc[cl].nunique() > 1]
    flips = [cl for cl in differ if {"supported", "contradicted"} <= set(v.loc[cl])]
    counts = {c: v[c].value_counts().to_dict() for c in v.columns}
    print("counts:", json.dumps(counts))
    print(f"flips (supported in one run, contradicted in another): {len(flips)} (goal 0) "
          f"{'MET' if not flips else 'not met'}")
    for cl in flips:
        print("   flip:", cl)
    print(f"verdicts that differ between runs: {len(differ)} of {len(v)} (goal <= 2) "
          f"{'MET' if len(differ) <= 2 else 'not met'}")
    for cl in differ:
        print("   differs:", cl, "|", " / ".join(v.loc[cl]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

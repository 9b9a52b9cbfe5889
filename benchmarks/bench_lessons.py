"""Print the figures of "The lessons hold" (issue 10) from a finished series run.

    make demo                                   # or: amdd-kit series --out runs/demo ...
    .venv/bin/python benchmarks/bench_lessons.py --run runs/demo

Reads only what the notebooks wrote (``metrics.json``, ``geometry.json``, ``ablations/``,
``series_times.json``) and prints each figure beside its goal and the baseline a model without
the skill gets. Nothing is retrained; nothing is timed here.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from amdd_kit.lessons import headline, read_json

GOALS = {"balanced_accuracy": 0.95, "auc": 0.98, "attribution_accuracy": 0.90,
         "detection_recall_min": 0.85, "silhouette_full": 0.25, "heldout_real_recall": 0.9,
         "series_seconds": 600.0}


def _read(path: Path) -> dict:
    return read_json(path) or {}


def _line(name: str, value, goal=None, baseline=None, higher: bool = True) -> None:
    v = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else \
        f"{value:.3f}" if isinstance(value, float) else str(value)
    g = "" if goal is None else f"  goal {'>=' if higher else '<='} {goal:g}"
    met = ""
    if goal is not None and isinstance(value, (int, float)) and not math.isnan(value):
        met = "  MET" if (value >= goal if higher else value <= goal) else "  not met"
    b = "" if baseline is None else f"  (baseline {baseline:.3f})"
    print(f"{name:58s} {v:>8s}{g}{met}{b}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo", help="a run directory written by the series")
    run = Path(ap.parse_args().run)
    m = _read(run / "metrics.json")
    if not m:
        raise SystemExit(f"{run}/metrics.json not found: run `make demo` (or notebook 03) first")
    print(f"run: {run.resolve()}  (n_test = {m.get('n_test')} clips)")
    figs = {f.key: f for f in headline(run)}   # the figures amdd-kit series ends with
    for key in ("balanced_accuracy", "auc", "attribution_accuracy"):
        _line(figs[key].name, figs[key].value, GOALS[key], figs[key].baseline)
    _line("attribution macro accuracy", m.get("attribution_macro_accuracy"), None, 1 / 7)
    _line("attribution accuracy on fakes only", m.get("attribution_fake_accuracy"), None,
          m.get("attribution_fake_majority_baseline"))
    rec = m.get("detection_recall") or {}
    for k, v in sorted(rec.items()):
        _line(f"  detection recall {k}", v, GOALS["detection_recall_min"] if k != "real" else None)
    for k, v in sorted((m.get("attribution_recall") or {}).items()):
        _line(f"  attribution recall {k}", v)
    for name, block in sorted((m.get("cross_dataset") or {}).items()):
        if isinstance(block, dict):
            _line(f"held-out {name}: real recall", block.get("real_recall"),
                  GOALS["heldout_real_recall"])
            _line(f"held-out {name}: fake recall (unseen generators)", block.get("fake_recall"))

    g = _read(run / "geometry.json")
    if g:
        sil = figs["silhouette"]
        _line("silhouette of the shared embedding by generator (05)", sil.value,
              GOALS["silhouette_full"], sil.baseline)
        for row in g.get("trace_report", []):
            _line(f"  {row['check']}", row.get("value"), None, row.get("baseline"))

    abl = run / "ablations"
    boot = _read(abl / "bootstrap.json")
    if boot:
        from amdd_kit.claims import interval

        for row in boot:
            for metric in ("balanced_accuracy", "attribution_accuracy", "probe_accuracy",
                           "silhouette", "trace_probe_visual", "trace_probe_audio"):
                vals = boot[row].get(metric, [])
                lo, hi = interval(vals)
                mean = float(np.nanmean(vals)) if len(vals) else float("nan")
                print(f"ablation {row:15s} {metric:22s} {mean:6.3f}  95% [{lo:.3f}, {hi:.3f}]")
        if "full" in boot and "detection_only" in boot:
            d = np.subtract(boot["full"]["silhouette"], boot["detection_only"]["silhouette"])
            lo, hi = interval(d)
            print(f"silhouette full - detection_only: {np.nanmean(d):+.3f}  95% [{lo:+.3f}, {hi:+.3f}]"
                  f"  {'excludes 0' if lo > 0 or hi < 0 else 'includes 0'}")
        claims = abl / "claims.json"
        if claims.exists():
            for c in json.loads(claims.read_text()):
                print(f"claim: {c['claim']}: {c['verdict'].upper()} ({c['ours']})")

    t = _read(run / "series_times.json")
    if t:
        for k, v in t.items():
            if k not in ("total", "last_call"):
                print(f"time {k:48s} {v:8.1f} s")
        _line("whole series (s)", t.get("total"), GOALS["series_seconds"], higher=False)


if __name__ == "__main__":
    main()

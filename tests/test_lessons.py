"""The closing summary of a series (amdd_kit.lessons) on fabricated run folders.

The command line prints it after a series (checked in test_report.py's failing-series test);
here the figures, baselines, verdict counts and missing parts are checked line by line.
"""
from __future__ import annotations

import json
from pathlib import Path

from amdd_kit import lessons as L

NOTEBOOKS = ["01_data.ipynb", "03_train.ipynb", "05_geometry.ipynb", "06_ablations.ipynb",
             "07_report.ipynb"]


def _write(run: Path, name: str, obj) -> None:
    path = run / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _line(text: str, start: str) -> str:
    found = [ln for ln in text.splitlines() if ln.strip().startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def test_whole_run_gives_figures_beside_baselines_verdicts_times_and_next(tmp_path):
    run = tmp_path / "demo"
    _write(run, "metrics.json", {"balanced_accuracy": 0.91234, "auc": 0.97, "n_test": 40,
                                 "attribution_accuracy": 0.8, "attribution_majority_baseline": 0.3})
    _write(run, "geometry.json", {"silhouette": 0.215})
    _write(run, "ablations/claims.json", [
        {"claim": "a", "verdict": "supported"}, {"claim": "b", "verdict": "supported"},
        {"claim": "c", "verdict": "contradicted"}, {"claim": "d", "verdict": "cannot tell"},
        {"claim": "e", "verdict": "not run"}])
    _write(run, "series_times.json", {n: 10.0 * (i + 1) for i, n in enumerate(NOTEBOOKS)}
           | {"total": 150.0, "last_call": 150.0})
    (run / "report.html").write_text("<html></html>")
    text = L.lesson_summary(run, NOTEBOOKS, tmp_path / "notebooks")
    assert _line(text, "balanced accuracy").split()[2:] == ["0.912", "vs", "0.500", "(chance)"]
    assert _line(text, "AUC").split()[1:] == ["0.970", "vs", "0.500", "(chance)"]
    assert _line(text, "attribution accuracy").endswith("0.800   vs 0.300 (largest class)")
    assert _line(text, "silhouette").endswith("0.215   vs 0.000 (no clusters)")
    assert _line(text, "verdicts on the paper claims").endswith(
        "2 supported, 1 contradicted, 1 cannot tell, 1 not run")
    assert _line(text, "time per notebook").endswith(
        "01 10, 03 20, 05 30, 06 40, 07 50; total 150")
    nxt = _line(text, "Next:")
    assert "report.html in a browser" in nxt and "jupyter lab " in nxt and "notebooks" in nxt
    assert "not measured" not in text and "not run  " not in text


def test_partial_run_says_what_is_missing_and_how_to_get_it(tmp_path):
    run = tmp_path / "part"
    _write(run, "metrics.json", {"balanced_accuracy": 0.7, "auc": None})  # NaN -> null
    _write(run, "series_times.json", {NOTEBOOKS[0]: 5.0, NOTEBOOKS[1]: 7.0, "total": 12.0,
                                      "last_call": 12.0})
    text = L.lesson_summary(run, NOTEBOOKS)
    assert _line(text, "balanced accuracy").split()[2] == "0.700"
    assert _line(text, "AUC").split()[1:] == ["n/a", "vs", "0.500", "(chance)"]
    sil = _line(text, "silhouette")
    assert "not measured, geometry.json is missing (notebook 05" in sil
    assert sil.endswith("--notebooks 05)")
    assert "no verdicts" in _line(text, "the paper's claims")
    missing = _line(text, "not run")
    assert "05_geometry.ipynb, 06_ablations.ipynb, 07_report.ipynb" in missing
    assert missing.endswith("--notebooks 05 06 07)")
    assert "report.html" not in _line(text, "Next:")


def test_headline_pairs_each_figure_with_its_baseline(tmp_path):
    _write(tmp_path, "metrics.json", {"attribution_accuracy": 0.5,
                                      "attribution_majority_baseline": 0.25})
    figs = {f.key: f for f in L.headline(tmp_path)}
    assert (figs["attribution_accuracy"].value, figs["attribution_accuracy"].baseline) == (0.5, 0.25)
    assert figs["balanced_accuracy"].value is None and figs["balanced_accuracy"].baseline == 0.5
    assert figs["silhouette"].value is None and L.verdict_counts(tmp_path) is None

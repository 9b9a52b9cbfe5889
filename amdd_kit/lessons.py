"""What a finished series found, in a few lines: the headline figures beside what no skill gets.

:func:`headline` reads the figures the notebooks wrote (``RUN/metrics.json`` from notebooks
03/04, ``RUN/geometry.json`` from 05) and pairs each with its no-skill baseline: 0.5 for balanced
accuracy and AUC (a coin), the share of the largest class for attribution accuracy (a constant
answer), 0 for the silhouette (no cluster structure). :func:`verdict_counts` counts the verdicts
of ``RUN/ablations/claims.json`` (notebook 06). :func:`lesson_summary` puts them together with the
time per notebook (``RUN/series_times.json``) and where to look next; ``amdd-kit series`` prints
it at the end, also when only some notebooks ran (it names the ones whose figures are missing).
``benchmarks/bench_lessons.py`` prints the same figures beside the project's goals.
"""
from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

#: (key in its file, what the terminal calls it, file, baseline value or key, baseline's name)
HEADLINE: tuple[tuple[str, str, str, float | str, str], ...] = (
    ("balanced_accuracy", "balanced accuracy", "metrics.json", 0.5, "chance"),
    ("auc", "AUC", "metrics.json", 0.5, "chance"),
    ("attribution_accuracy", "attribution accuracy (7 classes)", "metrics.json",
     "attribution_majority_baseline", "largest class"),
    ("silhouette", "silhouette by generator", "geometry.json", 0.0, "no clusters"),
)
#: which notebook writes each file the summary reads
WRITTEN_BY = {"metrics.json": "03", "geometry.json": "05", "ablations/claims.json": "06"}
#: the verdicts of notebook 06, in the order the summary gives them (others follow)
VERDICTS = ("supported", "contradicted", "cannot tell")


@dataclass
class Figure:
    """One headline figure: ``value`` / ``baseline`` are None where the file or key is missing."""

    key: str
    name: str
    source: str          # the file of the run it comes from
    value: float | None
    baseline: float | None
    baseline_name: str


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or unreadable (a run cut short)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def headline(run_dir: str | Path) -> list[Figure]:
    """The figures of :data:`HEADLINE` read from ``run_dir``."""
    run = Path(run_dir)
    files = {name: read_json(run / name) or {} for name in {h[2] for h in HEADLINE}}
    out = []
    for key, name, source, base, base_name in HEADLINE:
        data = files[source]
        baseline = _number(data.get(base)) if isinstance(base, str) else base
        out.append(Figure(key, name, source, _number(data.get(key)), baseline, base_name))
    return out


def verdict_counts(run_dir: str | Path) -> Counter | None:
    """Verdict -> how many claims got it (``RUN/ablations/claims.json``), None when absent."""
    claims = read_json(Path(run_dir) / "ablations" / "claims.json")
    if not isinstance(claims, list):
        return None
    return Counter(str(c.get("verdict", "?")) for c in claims if isinstance(c, dict))


def _where(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it, else absolute."""
    path = Path(path).absolute()
    try:
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def lesson_summary(run_dir: str | Path, notebooks: Sequence[str] = (),
                   notebooks_folder: str | Path | None = None) -> str:
    """The closing lines of ``amdd-kit series``: figures vs baselines, verdicts, times, next.

    Args:
        run_dir: the run the series wrote.
        notebooks: names of every notebook of the series (``01_data_and_preprocessing.ipynb``
            ...); those without a time in ``series_times.json`` are listed as not run.
        notebooks_folder: the notebooks a user opens in JupyterLab (for the "next" line).
    """
    run = Path(run_dir)
    lines = [f"What this run found ({_where(run)}):"]
    rerun = f"amdd-kit series --out {_where(run)} --notebooks"
    figures = headline(run)
    for source in dict.fromkeys(f.source for f in figures):   # one line per missing file
        if not (run / source).is_file():
            nb = WRITTEN_BY[source]
            names = ", ".join(f.name for f in figures if f.source == source)
            lines.append(f"  {names}: not measured, {source} is missing "
                         f"(notebook {nb}: {rerun} {nb})")
    for f in figures:
        if not (run / f.source).is_file():
            continue
        value = "n/a" if f.value is None else f"{f.value:.3f}"
        base = "" if f.baseline is None else f"   vs {f.baseline:.3f} ({f.baseline_name})"
        lines.append(f"  {f.name:34s} {value:>5s}{base}")
    counts = verdict_counts(run)
    if counts is None:
        lines.append(f"  the paper's claims: no verdicts, ablations/claims.json is missing "
                     f"(notebook 06: {rerun} 06)")
    else:
        order = list(VERDICTS) + sorted(set(counts) - set(VERDICTS))
        lines.append(f"  {'verdicts on the paper claims (06)':34s} "
                     + ", ".join(f"{counts.get(v, 0)} {v}" for v in order))
    times = read_json(run / "series_times.json") or {}
    per_nb = {k: v for k, v in times.items() if k not in ("total", "last_call")}
    if per_nb:
        lines.append(f"  {'time per notebook (s)':34s} "
                     + ", ".join(f"{k.split('_', 1)[0]} {v:.0f}" for k, v in per_nb.items())
                     + f"; total {times.get('total', sum(per_nb.values())):.0f}")
    missing = [n for n in notebooks if n not in per_nb]
    if missing:
        lines.append(f"  {'not run':34s} {', '.join(missing)} "
                     f"({rerun} {' '.join(n.split('_', 1)[0] for n in missing)})")
    report = run / "report.html"
    jupyter = Path(sys.executable).parent / "jupyter"
    folder = _where(Path(notebooks_folder)) if notebooks_folder else "notebooks/"
    lines.append("Next: " + (f"open {_where(report)} in a browser; " if report.is_file() else "")
                 + f"the executed notebooks are in {_where(run / 'notebooks')}; run them "
                 f"yourself with {_where(jupyter)} lab {folder}")
    return "\n".join(lines)

"""The run registry ``RUNS/index.csv``, run comparison and the regression banner.

``RUNS`` is the folder that holds the run dirs. :func:`register_run` appends one row per run
(its headline metrics, per-method recall, cross-dataset blocks, config and data fingerprints)
under a file lock, so a scheduler and a notebook can register at the same time;
:func:`load_registry` reads it back. :func:`compare_runs` / :func:`regressions` compare a run
with a base run (or the previous successful one), and :func:`regression_banner` turns the
comparison into the red / green banner of the retraining report (notebook 07).
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from filelock import FileLock

from .config import Config
from .jsonio import as_float as _num

#: Headline metrics of ``metrics.json`` kept in the registry (fractions in 0..1).
HEADLINE_METRICS: tuple[str, ...] = ("balanced_accuracy", "auc", "attribution_accuracy")

#: Columns of ``RUNS/index.csv``, in order.
REGISTRY_COLUMNS: tuple[str, ...] = (
    "run_id", "time", "config", "config_hash", "data_fingerprint", "status",
    *HEADLINE_METRICS, "run_dir",
    "detection_recall",    # JSON object: method -> detection recall on the test split
    "cross_dataset",       # JSON object: held-out set -> {"auc", "real_recall", "fake_recall"}
    "n_test", "arch", "metrics_hash", "error",
)


def data_fingerprint(data_dir: str | Path | None) -> str:
    """Short hash of the data a run saw: its clip-store manifests, else the corpus marker.

    Hashes every ``DATA/stores/*/manifest.parquet`` (name + bytes); when there is none, the
    ``DATA/.complete.json`` marker written by the synthetic corpus; ``""`` when neither exists.
    """
    if not data_dir:
        return ""
    data_dir = Path(data_dir)
    h = hashlib.sha1()
    manifests = sorted(data_dir.glob("stores/*/manifest.parquet"))
    if manifests:
        for m in manifests:
            h.update(m.parent.name.encode())
            h.update(m.read_bytes())
        return h.hexdigest()[:12]
    marker = data_dir / ".complete.json"
    if marker.is_file():
        h.update(marker.read_bytes())
        return h.hexdigest()[:12]
    return ""


def _cross_blocks(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Cross-dataset blocks of metrics.json: any dict (top level or one level down) with ``auc``
    and a recall, e.g. ``{"cross_dataset": {"lavdf": {"auc": .., "real_recall": ..}}}``."""
    keys = ("auc", "real_recall", "fake_recall")
    out: dict[str, dict[str, float]] = {}

    def take(name: str, block: Any) -> bool:
        if isinstance(block, dict) and "auc" in block and (
                "real_recall" in block or "fake_recall" in block):
            out[name] = {k: _num(block.get(k)) for k in keys if k in block}
            return True
        return False

    for name, value in metrics.items():
        if name in ("detection_recall", "attribution_recall", "per_method_recall") \
                or not isinstance(value, dict):
            continue
        if not take(name, value):
            for sub, block in value.items():
                take(str(sub), block)
    return out


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"amdd-kit: ignoring unreadable {path}: {exc}", file=sys.stderr)
        return {}
    return data if isinstance(data, dict) else {}


def run_record(run_dir: str | Path, status: str = "ok", *, data_dir: str | Path | None = None,
               config: str | None = None, run_id: str | None = None, error: str = ""
               ) -> dict[str, Any]:
    """One registry row for ``run_dir`` from ``RUN/metrics.json`` and ``RUN/config.json``."""
    run_dir = Path(run_dir).absolute()
    metrics = _read_json(run_dir / "metrics.json")
    cfg = _read_json(run_dir / "config.json")
    cfg_hash = ""
    if cfg:
        try:
            cfg_hash = Config.from_dict(cfg).hash()
        except Exception:  # a config from another version: hash its text
            cfg_hash = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    recall = metrics.get("detection_recall") or metrics.get("per_method_recall") or {}
    mfile = run_dir / "metrics.json"
    row: dict[str, Any] = {
        "run_id": run_id or run_dir.name,
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": cfg.get("name") or config or "",
        "config_hash": cfg_hash,
        "data_fingerprint": data_fingerprint(data_dir),
        "status": status,
        **{m: _num(metrics.get(m)) for m in HEADLINE_METRICS},
        "run_dir": str(run_dir),
        "detection_recall": json.dumps({str(k): _num(v) for k, v in recall.items()},
                                       sort_keys=True),
        "cross_dataset": json.dumps(_cross_blocks(metrics), sort_keys=True),
        "n_test": metrics.get("n_test", ""),
        "arch": (cfg.get("model") or {}).get("arch", "") if isinstance(cfg.get("model"), dict)
        else "",
        "metrics_hash": hashlib.sha1(mfile.read_bytes()).hexdigest()[:12]
        if mfile.is_file() else "",
        "error": " ".join(str(error).split())[:500],
    }
    return row


def register_run(run_dir: str | Path, status: str = "ok", runs_dir: str | Path | None = None,
                 *, data_dir: str | Path | None = None, config: str | None = None,
                 run_id: str | None = None, error: str = "") -> dict[str, Any]:
    """Append ``run_dir`` to ``RUNS/index.csv`` (``RUNS`` defaults to the run's parent).

    Reads ``RUN/metrics.json`` and ``RUN/config.json`` when present (a failed run may have
    neither: its metrics stay empty). Registering the same run again with unchanged
    ``metrics.json`` and status updates that row's time instead of adding a duplicate.
    Returns the row as a dict.
    """
    run_dir = Path(run_dir).absolute()
    runs_dir = Path(runs_dir) if runs_dir else run_dir.parent
    runs_dir.mkdir(parents=True, exist_ok=True)
    row = run_record(run_dir, status, data_dir=data_dir, config=config, run_id=run_id,
                     error=error)
    index = runs_dir / "index.csv"
    with FileLock(str(index) + ".lock"):
        reg = load_registry(runs_dir)
        same = reg.index[(reg["run_dir"] == row["run_dir"]) & (reg["run_id"] == row["run_id"])]
        if len(same) and same[-1] == reg.index[-1]:
            last = reg.loc[same[-1]]
            if (last["status"] == status and str(last["metrics_hash"]) == row["metrics_hash"]
                    and row["metrics_hash"]):
                reg = reg.drop(index=same[-1])
        reg = pd.concat([reg, pd.DataFrame([row])], ignore_index=True)
        tmp = index.with_suffix(".csv.tmp")
        reg[list(REGISTRY_COLUMNS)].to_csv(tmp, index=False)
        os.replace(tmp, index)
    return row


def load_registry(runs_dir: str | Path) -> pd.DataFrame:
    """``RUNS/index.csv`` as a DataFrame (empty, with the registry columns, when missing)."""
    index = Path(runs_dir) / "index.csv"
    if not index.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REGISTRY_COLUMNS})
    reg = pd.read_csv(index, dtype={c: str for c in REGISTRY_COLUMNS
                                    if c not in HEADLINE_METRICS}, keep_default_na=False)
    reg = reg.rename(columns={"per_method_recall": "detection_recall"})  # its old name
    for c in REGISTRY_COLUMNS:
        if c not in reg.columns:
            reg[c] = float("nan") if c in HEADLINE_METRICS else ""
    for c in HEADLINE_METRICS:
        reg[c] = pd.to_numeric(reg[c], errors="coerce")
    return reg[list(REGISTRY_COLUMNS)].reset_index(drop=True)


# -- comparison and regressions -----------------------------------------------------------------
def _as_registry(registry: pd.DataFrame | str | Path) -> pd.DataFrame:
    return registry if isinstance(registry, pd.DataFrame) else load_registry(registry)


def find_run(registry: pd.DataFrame, ref: str | int | Path | None) -> int:
    """Row position of a run: ``None`` = the last row; an int = a position; otherwise the
    latest row whose ``run_id``, run-dir name or run-dir path equals ``ref``."""
    if registry.empty:
        raise ValueError("the run registry is empty")
    if ref is None:
        return len(registry) - 1
    if isinstance(ref, int):
        return ref if ref >= 0 else len(registry) + ref
    text = str(ref)
    ids = registry["run_id"].astype(str)
    dirs = registry["run_dir"].astype(str)
    for mask in (ids == text, dirs.map(lambda d: Path(d).name) == text,
                 dirs == str(Path(text).absolute())):
        hits = [i for i, m in enumerate(mask) if m]
        if hits:
            return hits[-1]
    raise ValueError(f"run {text!r} is not in the registry; known: {sorted(set(ids))}")


def _flat_metrics(row: pd.Series) -> dict[tuple[str, str], float]:
    """(kind, metric) -> value for one registry row."""
    out = {("headline", m): _num(row.get(m)) for m in HEADLINE_METRICS}
    try:
        recall = json.loads(row.get("detection_recall") or "{}")
    except json.JSONDecodeError:
        recall = {}
    for method, v in recall.items():
        out[("per_method", f"recall[{method}]")] = _num(v)
    try:
        cross = json.loads(row.get("cross_dataset") or "{}")
    except json.JSONDecodeError:
        cross = {}
    for name, block in cross.items():
        for k, v in block.items():
            out[("cross", f"{name}.{k}")] = _num(v)
    return out


def compare_runs(registry: pd.DataFrame | str | Path, current: str | int | None = None,
                 base: str | int | None = None, threshold: float = 0.02) -> pd.DataFrame:
    """Metric deltas of ``current`` against ``base``.

    ``registry`` is a DataFrame from :func:`load_registry` or a runs folder. ``current`` and
    ``base`` name runs as :func:`find_run` does; ``current=None`` is the last row and
    ``base=None`` the latest successful run registered before it.

    Returns one row per metric: ``metric``, ``kind`` (``headline`` | ``per_method`` |
    ``cross``), ``base``, ``current``, ``delta`` (current - base) and ``regression``
    (``delta < -threshold``). ``.attrs`` holds ``current_run``, ``base_run``, ``threshold``.
    With no base run the frame is empty and ``attrs["base_run"]`` is None.
    """
    reg = _as_registry(registry)
    cols = ["metric", "kind", "base", "current", "delta", "regression"]
    i = find_run(reg, current)
    if base is None:
        earlier = [j for j in range(i) if reg.loc[j, "status"] == "ok"]
        j = earlier[-1] if earlier else None
    else:
        j = find_run(reg, base)
    frame = pd.DataFrame(columns=cols)
    frame.attrs.update(current_run=reg.loc[i, "run_id"], threshold=threshold,
                       base_run=None if j is None else reg.loc[j, "run_id"])
    if j is None:
        return frame
    cur, ref = _flat_metrics(reg.loc[i]), _flat_metrics(reg.loc[j])
    rows = []
    for key in list(ref) + [k for k in cur if k not in ref]:
        kind, metric = key
        b, c = ref.get(key, float("nan")), cur.get(key, float("nan"))
        d = c - b
        rows.append({"metric": metric, "kind": kind, "base": b, "current": c, "delta": d,
                     "regression": bool(d < -threshold)})  # NaN < x is False
    out = pd.DataFrame(rows, columns=cols)
    out.attrs.update(frame.attrs)
    return out


def regressions(registry: pd.DataFrame | str | Path, current: str | int | None = None,
                base: str | int | None = None, threshold: float = 0.02,
                kinds: Sequence[str] = ("headline",)) -> list[str]:
    """Metrics of ``current`` that dropped by more than ``threshold`` against ``base``.

    By default only the headline metrics count (balanced accuracy, AUC, attribution accuracy);
    per-method recall on a small test split is noisy: pass ``kinds=("headline", "per_method",
    "cross")`` to include it.
    """
    table = compare_runs(registry, current, base, threshold)
    if table.empty:
        return []
    return table.loc[table["regression"] & table["kind"].isin(kinds), "metric"].tolist()


def regression_banner(table: pd.DataFrame, kinds: Sequence[str] = ("headline",)) -> str:
    """An HTML banner for a :func:`compare_runs` table: red REGRESSION, green or grey."""
    threshold = table.attrs.get("threshold", 0.02)
    base, cur = table.attrs.get("base_run"), table.attrs.get("current_run")
    style = ("padding:12px 16px;border-radius:6px;font-size:1.1em;font-family:sans-serif;"
             "color:white;background:{}")
    if base is None:
        return (f'<div class="amdd-banner amdd-none" style="{style.format("#6b7280")}">'
                f"No earlier run to compare <b>{html.escape(str(cur))}</b> with.</div>")
    bad = table[table["regression"] & table["kind"].isin(kinds)] if not table.empty else table
    if len(bad):
        items = "; ".join(f"{html.escape(r.metric)} {r.base:.3f} &rarr; {r.current:.3f} "
                          f"({r.delta:+.3f})" for r in bad.itertuples())
        return (f'<div class="amdd-banner amdd-regression" style="{style.format("#b91c1c")}">'
                f"<b>REGRESSION</b> in {html.escape(str(cur))} vs {html.escape(str(base))} "
                f"(threshold {threshold:.3f}): {items}</div>")
    return (f'<div class="amdd-banner amdd-ok" style="{style.format("#15803d")}">'
            f"No regression: {html.escape(str(cur))} vs {html.escape(str(base))} "
            f"(no metric dropped by more than {threshold:.3f}).</div>")


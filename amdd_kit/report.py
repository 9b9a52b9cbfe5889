"""Papermill series runner, run registry, run comparison and offline HTML reports.

Four jobs, each a plain function that the ``amdd-kit`` command, the notebooks and a scheduler
(cron, CI, a workflow engine) call alike:

* :func:`run_series` executes the numbered notebooks (``notebooks/01_...ipynb`` ...) in order
  with papermill into ``RUN/notebooks/``; every notebook only receives the parameters that its
  ``parameters`` cell declares. A failing notebook stops the series; the executed notebook with
  the error is kept and the failure is written into the run registry.
* The **run registry** ``RUNS/index.csv`` (``RUNS`` = the folder that holds the run dirs) has one
  row per registered run: :func:`register_run`, :func:`load_registry`.
* :func:`compare_runs` / :func:`regressions` compare a run with a base run (or the previous one).
* :func:`export_html` turns an executed notebook into a report that renders **offline**: code
  hidden, plotly.js embedded once, no ``<script src="https://...">`` (no CDN) anywhere.
  :func:`report_cli` writes the run-history page ``RUNS/report.html``.

From a shell (e.g. after a plain ``papermill`` run)::

    python -m amdd_kit.report export RUN/notebooks/07_retraining_report.ipynb RUN/report.html
    python -m amdd_kit.report history RUNS
"""
from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from .jsonio import write_json

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

#: Default parameters every series notebook may declare.
SERIES_PARAMETERS: tuple[str, ...] = ("run_dir", "config", "data_dir")

#: Name of the Jupyter kernel that ``make setup`` registers for the project's venv.
PROJECT_KERNEL = "amdd-kit"


# =============================================================================================
# Notebook discovery and parameters
# =============================================================================================
def notebooks_dir(override: str | Path | None = None) -> Path:
    """The folder holding the numbered notebooks.

    Order of precedence: ``override``, the ``AMDD_KIT_NOTEBOOKS`` environment variable, then
    ``notebooks/`` next to the ``amdd_kit`` package (the repository root of a source checkout).
    """
    candidate = override or os.environ.get("AMDD_KIT_NOTEBOOKS") \
        or Path(__file__).resolve().parent.parent / "notebooks"
    path = Path(candidate)
    if not path.is_dir():
        raise FileNotFoundError(
            f"notebook folder {str(path)!r} not found; pass notebooks_dir=... or set "
            "AMDD_KIT_NOTEBOOKS to the repository's notebooks/ folder")
    return path


def list_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) of ``folder``, in series order."""
    folder = notebooks_dir(folder)
    return sorted(p for p in folder.glob("[0-9]*.ipynb") if re.match(r"^\d+_", p.name))


def select_notebooks(names: Sequence[str | Path] | None, folder: str | Path | None = None
                     ) -> list[Path]:
    """Resolve a user's selection into notebook paths (series order kept for numbers/names).

    Each item may be a number (``7`` or ``"07"``), a name with or without ``.ipynb``
    (``"07_retraining_report"``) or a path to an existing ``.ipynb`` file.
    Raises ``ValueError`` naming the item that matches nothing.
    """
    if not names:
        found = list_notebooks(folder)
        if not found:
            raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
        return found
    out: list[Path] = []
    available: list[Path] | None = None
    for item in names:
        p = Path(item)
        if p.suffix == ".ipynb" and p.is_file():
            out.append(p)
            continue
        if available is None:
            available = list_notebooks(folder)
        text = str(item).removesuffix(".ipynb")
        if text.isdigit():
            match = [q for q in available if int(q.name.split("_", 1)[0]) == int(text)]
        else:
            match = [q for q in available if q.stem == text]
        if len(match) != 1:
            raise ValueError(f"notebook {str(item)!r} matches {len(match)} of "
                             f"{[q.name for q in available]}")
        out.append(match[0])
    return out


def declared_parameters(notebook: str | Path) -> dict[str, Any]:
    """Names declared in the notebook's ``parameters`` cell -> their default (source text).

    The cell is parsed with Python's ``ast``: every top-level assignment counts
    (``epochs = 0  # 0 = the config's value`` included, a line that papermill's own
    ``inspect_notebook`` cannot parse because of the ``=`` in the comment). A cell that is not
    valid Python falls back to papermill's parser. No ``parameters`` cell: nothing declared.
    """
    import ast
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "code"
                 and "parameters" in (c.metadata.get("tags") or [])), None)
    if cell is None:
        return {}
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        import papermill as pm
        return {name: spec.get("default")
                for name, spec in pm.inspect_notebook(str(notebook)).items()}
    found: dict[str, Any] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            for name in ([t] if isinstance(t, ast.Name) else
                         [e for e in getattr(t, "elts", []) if isinstance(e, ast.Name)]):
                found[name.id] = ast.get_source_segment(cell.source, node.value) \
                    if node.value is not None else None
    return found


def parameters_for(notebook: str | Path, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` whose names the notebook's parameters cell declares."""
    declared = declared_parameters(notebook)
    return {k: v for k, v in values.items() if k in declared}


# =============================================================================================
# Kernel choice
# =============================================================================================
def _python_spec_is_ours(argv: Sequence[str]) -> bool:
    """True when a kernelspec's command starts the interpreter running this code.

    jupyter_client replaces a bare ``python`` / ``python3`` / ``python3.X`` by
    ``sys.executable``; an absolute path must be this very interpreter (compared without
    resolving symlinks: a venv's python is a symlink to the system one).
    """
    if not argv:
        return False
    exe = argv[0]
    bare = {"python", f"python{sys.version_info[0]}",
            f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    if exe in bare:
        return True
    return os.path.isabs(exe) and Path(exe).absolute() == Path(sys.executable).absolute()


def _spec_runnable(argv: Sequence[str]) -> bool:
    if not argv:
        return False
    exe = argv[0]
    return Path(exe).exists() if os.path.isabs(exe) else shutil.which(exe) is not None


def resolve_kernel(kernel: str | None = None) -> str:
    """Pick the Jupyter kernel that runs the notebooks and return its name.

    1. ``kernel`` when given (it must exist: ``ValueError`` otherwise);
    2. ``amdd-kit`` when registered (``make setup`` does that) for this interpreter; one
       registered for another interpreter (another clone, an old venv) is skipped with a note;
    3. ``python3`` when it starts this interpreter (``sys.executable``);
    4. otherwise a private kernelspec ``amdd-kit-python`` for ``sys.executable`` is written
       under the temp dir and put on ``JUPYTER_PATH`` for this process (papermill's
       ``NoSuchKernel`` / wrong-interpreter trouble comes from a ``python3`` spec that points
       at another Python; this sidesteps it without touching the user's Jupyter setup).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    if kernel:
        try:
            ksm.get_kernel_spec(kernel)
        except NoSuchKernel:
            raise ValueError(f"no Jupyter kernel named {kernel!r}; installed: "
                             f"{sorted(ksm.find_kernel_specs())}") from None
        return kernel
    specs = ksm.find_kernel_specs()
    if PROJECT_KERNEL in specs:
        argv = ksm.get_kernel_spec(PROJECT_KERNEL).argv
        if _python_spec_is_ours(argv):
            return PROJECT_KERNEL
        if _spec_runnable(argv):  # e.g. registered from another clone or an older venv
            print(f"amdd-kit: not using kernel {PROJECT_KERNEL!r}: it runs {argv[0]}, not "
                  f"{sys.executable} (pass kernel={PROJECT_KERNEL!r} to force it)",
                  file=sys.stderr)
    if "python3" in specs or not specs:
        try:
            if _python_spec_is_ours(ksm.get_kernel_spec("python3").argv):
                return "python3"
        except NoSuchKernel:
            pass
    return _private_kernel()


def _private_kernel(name: str = "amdd-kit-python") -> str:
    """Write a kernelspec for ``sys.executable`` under the temp dir and expose it."""
    digest = hashlib.sha1(sys.executable.encode()).hexdigest()[:8]
    root = Path(tempfile.gettempdir()) / f"amdd-kit-jupyter-{digest}"
    spec_dir = root / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"amdd-kit ({sys.executable})", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(root) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *paths])
    return name


# =============================================================================================
# Series runner
# =============================================================================================
@dataclass
class SeriesResult:
    """What :func:`run_series` did. ``ok`` False means a notebook failed (see ``error``)."""

    ok: bool
    run_dir: Path
    kernel: str
    executed: list[Path] = field(default_factory=list)   # executed notebooks, in order
    seconds: dict[str, float] = field(default_factory=dict)  # notebook name -> wall time
    failed: str | None = None       # name of the notebook that failed
    error: str | None = None        # one-line reason
    report: Path | None = None      # RUN/report.html when it was written

    def __bool__(self) -> bool:
        return self.ok


class SeriesError(RuntimeError):
    """Raised by :func:`run_series` with ``raise_on_error=True``; carries the result."""

    def __init__(self, result: SeriesResult):
        super().__init__(result.error)
        self.result = result


def _one_line(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = str(exc)
    first = next((ln.strip() for ln in str(evalue).splitlines() if ln.strip()), "")
    return f"{ename}: {first}" if first else ename


@contextlib.contextmanager
def _kernel_env(run_dir: Path) -> Iterator[None]:
    """Environment defaults inherited by the kernels (writable caches for numba/matplotlib)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amdd-kit"
    defaults = {"NUMBA_CACHE_DIR": str(cache / "numba"),
                "MPLCONFIGDIR": str(cache / "matplotlib")}
    added = [k for k in defaults if k not in os.environ]
    for k in added:
        Path(defaults[k]).mkdir(parents=True, exist_ok=True)
        os.environ[k] = defaults[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def run_series(out: str | Path, config: str = "tiny", data_dir: str | Path = "data/synthetic",
               params: dict[str, Any] | None = None,
               notebooks: Sequence[str | Path] | None = None, kernel: str | None = None,
               timeout: float | None = None, *, notebooks_folder: str | Path | None = None,
               runs_dir: str | Path | None = None, progress: bool = True,
               log_output: bool = False, export: bool = True,
               raise_on_error: bool = False) -> SeriesResult:
    """Execute the notebook series with papermill into ``out/notebooks/``.

    Args:
        out: the run directory ``RUN`` (created, with ``RUN/notebooks/``).
        config, data_dir: passed as the ``config`` / ``data_dir`` parameters; ``out`` is passed
            as ``run_dir``. Paths are made absolute, so notebooks do not depend on a cwd.
        params: extra parameters (e.g. ``{"epochs": 3}``). Every notebook receives only the
            parameters its ``parameters`` cell declares.
        notebooks: a subset (numbers, names or paths); default every numbered notebook.
        kernel: Jupyter kernel name; default see :func:`resolve_kernel`.
        timeout: per-cell execution timeout in seconds (None: no limit).
        notebooks_folder: where the notebooks live (default :func:`notebooks_dir`).
        runs_dir: the registry folder (default: the parent of ``out``).
        progress: print one line per notebook (name, elapsed seconds) to stdout, and
            papermill's per-cell progress bar when stderr is a terminal.
        log_output: also stream the notebooks' own output to the terminal (cron logs).
        export: after a successful series, export the executed report notebook (the one
            numbered 07, else none) to ``RUN/report.html``.
        raise_on_error: raise :class:`SeriesError` instead of returning ``ok=False``.

    On a failing notebook the series stops; the executed notebook (with the traceback) stays in
    ``RUN/notebooks/``, the run is registered with ``status="failed"`` and the result carries a
    one-line ``error`` (``"03_train.ipynb: ValueError: ..."``).
    """
    import papermill as pm

    run_dir = Path(out).absolute()
    nb_out = run_dir / "notebooks"
    nb_out.mkdir(parents=True, exist_ok=True)
    paths = select_notebooks(notebooks, notebooks_folder)
    kernel_name = resolve_kernel(kernel)
    values: dict[str, Any] = {"run_dir": str(run_dir), "config": config,
                              "data_dir": str(Path(data_dir).absolute())}
    values.update(params or {})
    result = SeriesResult(ok=True, run_dir=run_dir, kernel=kernel_name)
    started = time.time()
    say = (lambda msg: print(msg, flush=True)) if progress else (lambda msg: None)
    cell_bar = progress and sys.stderr.isatty()  # papermill's per-cell bar, not in cron logs
    say(f"amdd-kit series: {len(paths)} notebook(s) -> {nb_out} (kernel {kernel_name!r}, "
        f"python {sys.executable})")

    with _kernel_env(run_dir):
        for i, src in enumerate(paths, 1):
            dst = nb_out / src.name
            t0 = time.time()
            try:
                given = parameters_for(src, values)
                say(f"[{i}/{len(paths)}] {src.name} ...")
                pm.execute_notebook(str(src), str(dst), parameters=given,
                                    kernel_name=kernel_name, progress_bar=cell_bar,
                                    log_output=log_output, cwd=os.getcwd(),
                                    execution_timeout=timeout)
            except Exception as exc:  # papermill, nbclient (timeout, dead kernel), bad input
                dt = time.time() - t0
                result.seconds[src.name] = dt
                result.ok, result.failed = False, src.name
                result.error = f"{src.name}: {_one_line(exc)}"
                if dst.exists():
                    result.executed.append(dst)
                say(f"[{i}/{len(paths)}] {src.name} FAILED after {dt:.1f} s: {_one_line(exc)}")
                say(f"    the executed notebook with the error: {dst}")
                break
            dt = time.time() - t0
            result.seconds[src.name] = dt
            result.executed.append(dst)
            say(f"[{i}/{len(paths)}] {src.name} done in {dt:.1f} s")

    total = time.time() - started
    write_json(run_dir / "series_times.json", {**{k: round(v, 1) for k, v in result.seconds.items()},
                                               "total": round(total, 1)})
    say(f"amdd-kit series: {total:.1f} s in all")
    if not result.ok:
        _safe_register(run_dir, "failed", runs_dir, data_dir, config, result.error or "")
        say(f"amdd-kit series: FAILED after {total:.1f} s ({result.error})")
        if raise_on_error:
            raise SeriesError(result)
        return result

    # The report notebook registers the run itself; register here when nothing in the series did.
    if not _registered_since(run_dir, runs_dir, started):
        _safe_register(run_dir, "ok", runs_dir, data_dir, config, "")
    report_nb = next((p for p in result.executed if p.name.startswith("07")), None)
    if export and report_nb is not None:
        try:
            result.report = export_html(report_nb, run_dir / "report.html")
            say(f"report: {result.report}")
        except Exception as exc:  # a broken export must not hide a finished series
            say(f"amdd-kit series: could not export the report: {_one_line(exc)}")
    say(f"amdd-kit series: finished in {total:.1f} s")
    return result


def _safe_register(run_dir: Path, status: str, runs_dir, data_dir, config: str,
                   error: str) -> None:
    try:
        register_run(run_dir, status, runs_dir=runs_dir, data_dir=data_dir, config=config,
                     error=error)
    except Exception as exc:  # the registry is a record, never the reason a series dies
        print(f"amdd-kit: could not write the run registry: {_one_line(exc)}", file=sys.stderr)


def _registered_since(run_dir: Path, runs_dir, since: float) -> bool:
    try:
        reg = load_registry(runs_dir or run_dir.parent)
    except Exception:
        return False
    if reg.empty:
        return False
    same = reg[reg["run_dir"].astype(str) == str(run_dir)]
    times = pd.to_datetime(same["time"], errors="coerce", utc=True)
    return bool((times >= pd.Timestamp(since - 1, unit="s", tz="UTC")).any())


# =============================================================================================
# Run registry
# =============================================================================================
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


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


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
            from .config import Config
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` + ``.lock`` (POSIX; no lock elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: single-writer assumption
        yield
        return
    with open(str(path) + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    with _locked(index):
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


# =============================================================================================
# Comparison and regressions
# =============================================================================================
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


# =============================================================================================
# Offline HTML export
# =============================================================================================
#: Tags and attributes that make a browser fetch something when the page loads.
_FETCHING_ATTRS = {"script": "src", "link": "href", "img": "src", "iframe": "src",
                   "source": "src", "video": "src", "audio": "src", "embed": "src",
                   "object": "data", "track": "src"}


class _ResourceScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        want = _FETCHING_ATTRS.get(tag)
        for name, value in attrs:
            if value and name == want and re.match(r"^\s*(https?:)?//", value, re.I):
                self.found.append(f"<{tag} {name}={value}>")


def external_resources(page: str) -> list[str]:
    """Every ``http(s)://`` (or protocol-relative ``//``) source the page would load:
    ``<script src>``, ``<link href>``, ``<img src>``, ``<iframe src>`` ... (parsed with
    ``html.parser``; plain ``<a href>`` links are not loads and are not listed)."""
    scanner = _ResourceScanner()
    scanner.feed(page)
    scanner.close()
    return scanner.found


_EXTERNAL_SCRIPT = re.compile(
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?\s*(?:https?:)?//[^>]*>\s*</script>", re.I)
_PLOTLY_BUNDLE = "* plotly.js v"

#: Template: JupyterLab look, without the CDN scripts (require.js, MathJax, mermaid, widgets),
#: with plotly.js inlined once in <head> when the notebook has figures.
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}
{%- if resources.amdd_plotly_js -%}
<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script type="text/javascript">{{ resources.amdd_plotly_js }}</script>
{%- endif -%}
{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def _offline_outputs(nb) -> bool:
    """Rewrite outputs in place so they render offline; True when there is a plotly figure.

    * ``application/vnd.plotly.v1+json`` (what ``fig.show()`` emits under papermill) gets an
      HTML rendering without plotly.js (the page embeds plotly.js once);
    * the notebook renderer's 4 MB plotly.js bundle outputs are dropped (same reason);
    * ``<script src="https://...">`` tags (plotly CDN, MathJax CDN) are removed from HTML.
    """
    import plotly.io as pio

    has_plotly = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                kept.append(out)
                continue
            fig_json = data.get("application/vnd.plotly.v1+json")
            page = data.get("text/html")
            if isinstance(page, list):
                page = "".join(page)
            if fig_json is not None:
                try:
                    fig = pio.from_json(json.dumps(fig_json), skip_invalid=True)
                    data["text/html"] = pio.to_html(fig, include_plotlyjs=False,
                                                    full_html=False, include_mathjax=False)
                    has_plotly = True
                except Exception as exc:  # a malformed figure must not stop the report
                    data["text/plain"] = f"[plotly figure could not be rendered: {exc}]"
                data.pop("application/vnd.plotly.v1+json", None)
            elif page is not None:
                if _PLOTLY_BUNDLE in page and "Plotly.newPlot(" not in page:
                    continue  # notebook-renderer initialisation: plotly.js comes from <head>
                if "Plotly.newPlot(" in page or "plotly-graph-div" in page:
                    has_plotly = True
                data["text/html"] = _EXTERNAL_SCRIPT.sub("", page)
            kept.append(out)
        cell["outputs"] = kept
    return has_plotly


def export_html(executed_ipynb: str | Path, html_path: str | Path) -> Path:
    """Export an executed notebook to an offline HTML report (code cells hidden).

    The page uses nbconvert's ``lab`` look with inputs excluded, embeds plotly.js once (no CDN)
    when the notebook shows plotly figures, drops stored widget state (its renderer would come
    from a CDN; widgets do not run in a static page anyway) and removes the template's CDN
    scripts (require.js, MathJax, mermaid). LaTeX in markdown therefore shows as source.
    Any remaining external load is reported on stderr (see :func:`external_resources`).
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    executed_ipynb, html_path = Path(executed_ipynb), Path(html_path)
    nb = nbformat.read(str(executed_ipynb), as_version=4)
    nb.metadata.pop("widgets", None)
    has_plotly = _offline_outputs(nb)
    exporter = HTMLExporter(template_name="lab",
                            extra_loaders=[jinja2.DictLoader({"amdd_report.html.j2": _TEMPLATE})],
                            template_file="amdd_report.html.j2")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    resources = {"amdd_plotly_js": get_plotlyjs().replace("</script", "<\\/script")
                 if has_plotly else "",
                 "metadata": {"name": executed_ipynb.stem}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    leftovers = external_resources(body)
    if leftovers:
        print(f"amdd-kit: {html_path.name} still loads {len(leftovers)} external resource(s), "
              f"e.g. {leftovers[0]}", file=sys.stderr)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_suffix(html_path.suffix + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html_path)
    return html_path


# =============================================================================================
# Run-history page
# =============================================================================================
def trend_figure(registry: pd.DataFrame, metrics: Sequence[str] = HEADLINE_METRICS):
    """Plotly line chart: each headline metric over the registered runs (in order)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    x = [f"{i}: {r}" for i, r in enumerate(registry["run_id"].astype(str))]
    for m in metrics:
        fig.add_trace(go.Scatter(x=x, y=registry[m], mode="lines+markers", name=m,
                                 text=registry["time"], hovertemplate="%{x}<br>%{text}<br>"
                                 + m + "=%{y:.3f}<extra></extra>"))
    fig.update_layout(title="Metrics across runs", yaxis=dict(title="fraction", range=[0, 1.02]),
                      xaxis_title="run (registry order)", height=420, template="plotly_white")
    return fig


def recall_delta_figure(table: pd.DataFrame):
    """Bar chart of per-method recall deltas from a :func:`compare_runs` table."""
    import plotly.graph_objects as go

    per = table[table["kind"] == "per_method"] if not table.empty else table
    colors = ["#b91c1c" if r else "#2563eb" for r in per.get("regression", [])]
    fig = go.Figure(go.Bar(x=list(per.get("metric", [])), y=list(per.get("delta", [])),
                           marker_color=colors))
    fig.update_layout(title=f"Per-method recall: {table.attrs.get('current_run')} minus "
                            f"{table.attrs.get('base_run')}",
                      yaxis_title="recall delta", height=380, template="plotly_white")
    return fig


def report_cli(runs_dir: str | Path, threshold: float = 0.02, quiet: bool = False) -> Path:
    """``amdd-kit report --runs DIR``: history table + trends + latest comparison.

    Prints the history table to stdout and writes ``DIR/report.html`` (plotly.js embedded,
    renders offline). Returns the HTML path.
    """
    import plotly.io as pio

    runs_dir = Path(runs_dir)
    reg = load_registry(runs_dir)
    if reg.empty:
        raise FileNotFoundError(f"no runs registered in {runs_dir / 'index.csv'}")
    show = ["run_id", "time", "config", "status", *HEADLINE_METRICS, "data_fingerprint"]
    if not quiet:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(reg[show].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    ok_rows = reg.index[reg["status"] == "ok"]
    parts = [f"<h1>amdd-kit run history</h1><p>{len(reg)} registered run(s) in "
             f"<code>{html.escape(str(runs_dir.absolute()))}</code>; generated "
             f"{datetime.now().astimezone().isoformat(timespec='seconds')}.</p>"]
    if len(ok_rows):
        table = compare_runs(reg, int(ok_rows[-1]), None, threshold)
        parts.append(regression_banner(table))
        parts.append(pio.to_html(trend_figure(reg), include_plotlyjs=True, full_html=False))
        if not table.empty:
            parts.append(pio.to_html(recall_delta_figure(table), include_plotlyjs=False,
                                     full_html=False))
            parts.append("<h2>Latest run against the previous one</h2>"
                         + table.to_html(index=False, float_format=lambda v: f"{v:.3f}",
                                         na_rep="-"))
    parts.append("<h2>All runs</h2>" + reg[show + ["run_dir", "error"]].to_html(
        index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>amdd-kit runs</title>"
            "<style>body{font-family:sans-serif;margin:2em;}table{border-collapse:collapse;"
            "font-size:.9em}td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    out = runs_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


# =============================================================================================
# python -m amdd_kit.report
# =============================================================================================
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amdd_kit.report export IN.ipynb OUT.html`` | ``history RUNS``."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m amdd_kit.report")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="executed notebook -> offline HTML (code hidden)")
    e.add_argument("notebook")
    e.add_argument("html")
    h = sub.add_parser("history", help="run-history page RUNS/report.html")
    h.add_argument("runs")
    a = p.parse_args(argv)
    try:
        if a.cmd == "export":
            print(export_html(a.notebook, a.html))
        else:
            print(report_cli(a.runs))
    except (FileNotFoundError, ValueError) as exc:
        print(f"amdd-kit: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The notebook series: find the numbered notebooks, read their parameters, run them in order.

:func:`run_series` executes ``notebooks/01_...ipynb`` ... with papermill into
``RUN/notebooks/``; every notebook only receives the parameters that its ``parameters`` cell
declares (read by :func:`papermill.inspect_notebook`). A failing notebook stops the series; the
executed notebook with the error is kept and the failure is written into the run registry
(:mod:`amdd_kit.registry`). After a successful series the report notebook (numbered 07) is
exported to ``RUN/report.html`` (:mod:`amdd_kit.export`). The kernel that runs them:
:func:`resolve_kernel` (``amdd-kit``, registered by ``make setup``, else this interpreter's
``python3``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import papermill as pm
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from .export import export_html
from .jsonio import write_json
from .paths import tool_caches
from .progress import NotebookProgress
from .registry import load_registry, register_run

#: Name of the Jupyter kernel that ``make setup`` registers for the project's venv.
PROJECT_KERNEL = "amdd-kit"


class MissingKernelError(ValueError):
    """No Jupyter kernel runs this interpreter; the message names the command that adds one."""


# -- notebook discovery and parameters --------------------------------------------------------
#: What a batch run passes to every notebook that declares it, unless ``params`` says otherwise:
#: no live widgets (nobody can click an executed notebook, and each live plotly widget saves its
#: JavaScript bundle, about 5 MB, into it; the static figure is shown and saved instead).
BATCH_PARAMS: dict[str, Any] = {"live_widgets": False}


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

    Read with :func:`papermill.inspect_notebook`, the parser papermill injects by. It reads one
    assignment per line and skips a line with a second ``=`` (``epochs = 0  # 0 = ...``): such a
    line raises ``ValueError`` naming it here, instead of a parameter that is silently never
    injected. No ``parameters`` cell: nothing declared.
    """
    skipped: list[str] = []
    catch = logging.Handler(logging.WARNING)
    catch.emit = lambda record: skipped.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("papermill")
    log.addHandler(catch)
    try:
        found = pm.inspect_notebook(str(notebook))
    finally:
        log.removeHandler(catch)
    unparsed = [m for m in skipped if m.startswith("Unable to parse")]
    if unparsed:
        raise ValueError(f"{Path(notebook).name}: papermill cannot read its parameters cell: "
                         f"{unparsed[0]} (one assignment per line, no '=' in its comment)")
    return {name: spec["default"] for name, spec in found.items()}


def parameters_for(notebook: str | Path, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``values`` whose names the notebook's parameters cell declares."""
    declared = declared_parameters(notebook)
    return {k: v for k, v in values.items() if k in declared}


# -- kernel choice ------------------------------------------------------------------------------
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


def resolve_kernel(kernel: str | None = None) -> str:
    """Pick the Jupyter kernel that runs the notebooks and return its name.

    1. ``kernel`` when given (it must exist: ``ValueError`` otherwise);
    2. ``amdd-kit`` when it runs this interpreter (``make setup`` registers it in the venv);
    3. ``python3`` when it runs this interpreter (ipykernel installs one into every venv);
    4. otherwise :class:`MissingKernelError`, naming the command that registers the kernel
       (papermill's ``NoSuchKernel`` / wrong-interpreter trouble comes from a kernelspec that
       points at another Python).
    """
    ksm = KernelSpecManager()
    if kernel:
        try:
            ksm.get_kernel_spec(kernel)
        except NoSuchKernel:
            raise ValueError(f"no Jupyter kernel named {kernel!r}; installed: "
                             f"{sorted(ksm.find_kernel_specs())}") from None
        return kernel
    seen = []
    for name in (PROJECT_KERNEL, "python3"):
        try:
            argv = ksm.get_kernel_spec(name).argv
        except NoSuchKernel:
            continue
        if _python_spec_is_ours(argv):
            return name
        seen.append(f"{name!r} runs {argv[0] if argv else '?'}")
    raise MissingKernelError(
        f"no Jupyter kernel runs {sys.executable}"
        + (f" ({'; '.join(seen)})" if seen else "")
        + f"; register one with: {sys.executable} -m ipykernel install --sys-prefix "
          f"--name {PROJECT_KERNEL} (make setup does this)")


# -- the series runner --------------------------------------------------------------------------
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
def _kernel_env() -> Iterator[None]:
    """Writable numba and matplotlib caches for the kernels when none is set
    (:func:`amdd_kit.paths.tool_caches`), unset again afterwards."""
    added = tool_caches()
    try:
        yield
    finally:
        for var in added:
            os.environ.pop(var, None)


def write_series_times(run_dir: Path, seconds: dict[str, float], call_seconds: float) -> dict:
    """Merge this call's per-notebook seconds into ``run_dir/series_times.json``.

    A series run in several calls (``--notebooks 06 07`` after a failure) keeps the latest time
    of every notebook, so ``total`` (their sum) is the whole series, and ``last_call`` the
    wall time of this call alone.
    """
    path = run_dir / "series_times.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    times = {k: v for k, v in old.items() if k not in ("total", "last_call")}
    times.update({k: round(v, 1) for k, v in seconds.items()})
    out = {**times, "total": round(sum(times.values()), 1), "last_call": round(call_seconds, 1)}
    write_json(path, out)
    return out


class QuietShutdownKernelManager(AsyncKernelManager):
    """The kernel manager of the series: jupyter_client's, less the interrupt at shutdown.

    ``shutdown_kernel`` sends SIGINT before its shutdown request. ipykernel may still be inside
    the handler of the notebook's last request (``kernel_info``), where SIGINT raises: the kernel
    logs ``KeyboardInterrupt caught in kernel`` on a notebook that succeeded. Here the shutdown
    request alone stops the kernel; one that does not stop (a cell still running after a
    timeout) is terminated after ``shutdown_wait_time``. ``interrupt_kernel()`` still interrupts.
    """

    async def _async_interrupt_kernel(self) -> None:
        if getattr(self, "shutting_down", False):
            return
        await super()._async_interrupt_kernel()


#: Kernel arguments of every notebook the series runs: only the kernel's errors reach the
#: terminal (ipykernel 7 otherwise warns about transport encryption once per kernel, which
#: listens on localhost, started by this process).
KERNEL_QUIET: tuple[str, ...] = ("--IPKernelApp.log_level=ERROR",)


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
        params: extra parameters (e.g. ``{"epochs": 3}``), over :data:`BATCH_PARAMS`. Every
            notebook receives only the parameters its ``parameters`` cell declares.
        notebooks: a subset (numbers, names or paths); default every numbered notebook.
        kernel: Jupyter kernel name; default see :func:`resolve_kernel`.
        timeout: per-cell execution timeout in seconds (None: no limit).
        notebooks_folder: where the notebooks live (default :func:`notebooks_dir`).
        runs_dir: the registry folder (default: the parent of ``out``).
        progress: print one line per notebook (name, elapsed seconds) to stdout and, while it
            runs, its section, cell count and elapsed time (:class:`~amdd_kit.progress.
            NotebookProgress`: one line redrawn in a terminal, a line a minute in a log).
        log_output: also stream the notebooks' own output to the terminal (cron logs).
        export: after a successful series, export the executed report notebook (the one
            numbered 07, else none) to ``RUN/report.html``.
        raise_on_error: raise :class:`SeriesError` instead of returning ``ok=False``.

    On a failing notebook the series stops; the executed notebook (with the traceback) stays in
    ``RUN/notebooks/``, the run is registered with ``status="failed"`` and the result carries a
    one-line ``error`` (``"03_train.ipynb: ValueError: ..."``).
    """
    run_dir = Path(out).absolute()
    nb_out = run_dir / "notebooks"
    nb_out.mkdir(parents=True, exist_ok=True)
    paths = select_notebooks(notebooks, notebooks_folder)
    kernel_name = resolve_kernel(kernel)
    values: dict[str, Any] = {"run_dir": str(run_dir), "config": config,
                              "data_dir": str(Path(data_dir).absolute()), **BATCH_PARAMS}
    values.update(params or {})
    result = SeriesResult(ok=True, run_dir=run_dir, kernel=kernel_name)
    started = time.time()
    say = (lambda msg: print(msg, flush=True)) if progress else (lambda msg: None)
    say(f"amdd-kit series: {len(paths)} notebook(s) -> {nb_out} (kernel {kernel_name!r}, "
        f"python {sys.executable})")

    with _kernel_env():
        for i, src in enumerate(paths, 1):
            dst = nb_out / src.name
            t0 = time.time()
            # the section / cell / clock line (plain log lines when the notebook's own output
            # is streamed too, so the two do not overwrite each other)
            prog = NotebookProgress(live=False if log_output else None) if progress else None
            try:
                given = parameters_for(src, values)
                say(f"[{i}/{len(paths)}] {src.name} ...")
                with prog or contextlib.nullcontext():
                    pm.execute_notebook(str(src), str(dst), parameters=given,
                                        kernel_name=kernel_name, progress_bar=False,
                                        log_output=log_output, cwd=os.getcwd(),
                                        execution_timeout=timeout,
                                        extra_arguments=list(KERNEL_QUIET),
                                        kernel_manager_class=QuietShutdownKernelManager,
                                        **(prog.hooks() if prog else {}))
            except Exception as exc:  # papermill, nbclient (timeout, dead kernel), bad input
                dt = time.time() - t0
                result.seconds[src.name] = dt
                result.ok, result.failed = False, src.name
                result.error = f"{src.name}: {_one_line(exc)}"
                if dst.exists():
                    result.executed.append(dst)
                say(f"[{i}/{len(paths)}] {src.name} FAILED after {dt:.1f} s: {_one_line(exc)}")
                if prog and prog.cell:
                    say(f"    in section '## {prog.section}', cell {prog.cell}/{prog.total}")
                say(f"    the executed notebook with the error: {dst}")
                break
            dt = time.time() - t0
            result.seconds[src.name] = dt
            result.executed.append(dst)
            say(f"[{i}/{len(paths)}] {src.name} done in {dt:.1f} s")

    total = time.time() - started
    write_series_times(run_dir, result.seconds, total)
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



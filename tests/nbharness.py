"""Execute a notebook of the series with papermill and hand back its run dir for assertions.

Used by the notebook tests: ``run_notebook("03_train_amdd", run_dir, {"epochs": 2})`` executes
``notebooks/03_train_amdd.ipynb`` with the parameters into ``run_dir/notebooks/`` using the
``amdd-kit`` kernel when it belongs to this interpreter (else the interpreter's own ``python3``
kernel), and fails the test with the notebook's own traceback when a cell raises. What the run
prints to the terminal (the kernel's log lines, papermill's warnings) is kept in
``run_dir/notebooks/NN_name.terminal.txt`` and echoed, for the test that keeps a successful run
quiet.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from amdd_kit.series import KERNEL_QUIET, QuietShutdownKernelManager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def kernel_name() -> str:
    """``amdd-kit`` when that kernelspec runs this very interpreter, else this interpreter's
    own kernel (the same choice ``amdd-kit series`` makes)."""
    from amdd_kit.series import resolve_kernel
    return resolve_kernel()


def notebook_path(name: str) -> Path:
    """``"03"`` or ``"03_train_amdd"`` -> the notebook file."""
    matches = sorted(NOTEBOOKS.glob(f"{name}*.ipynb"))
    if not matches:
        raise FileNotFoundError(f"no notebook matching {name!r} in {NOTEBOOKS}")
    return matches[0]


def run_notebook(name: str, run_dir: Path, parameters: dict[str, Any] | None = None,
                 timeout: int = 900) -> Path:
    """Execute one notebook; return ``run_dir``. Fails the test with the cell's traceback."""
    import papermill as pm

    src = notebook_path(name)
    run_dir = Path(run_dir)
    out_dir = run_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create it
    params = {"run_dir": str(run_dir), **(parameters or {})}
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    start = time.time()
    try:
        with terminal_to(terminal_log(run_dir, src.stem)):
            pm.execute_notebook(str(src), str(out_dir / src.name), parameters=params,
                                kernel_name=kernel_name(), cwd=str(REPO), progress_bar=False,
                                execution_timeout=timeout, log_output=False,
                                extra_arguments=list(KERNEL_QUIET),
                                kernel_manager_class=QuietShutdownKernelManager)
    except pm.PapermillExecutionError as e:
        tb = ANSI.sub("", "\n".join(e.traceback))
        pytest.fail(f"{src.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n{tb}",
                    pytrace=False)
    print(f"[nbharness] {src.name}: {time.time() - start:.0f} s")
    return run_dir


def terminal_log(run_dir: Path, stem: str) -> Path:
    """Where :func:`run_notebook` keeps what a notebook's run printed to the terminal."""
    return Path(run_dir) / "notebooks" / f"{stem}.terminal.txt"


@contextlib.contextmanager
def terminal_to(path: Path) -> Iterator[None]:
    """Send file descriptors 1 and 2 to ``path`` (the kernel inherits them: its log lines land
    there, as they would in the terminal of ``amdd-kit series``), then echo it to stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "wb") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
    sys.stderr.write(path.read_text(errors="replace"))

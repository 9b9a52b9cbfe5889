"""The course lab, the instructor's side: hand-outs built from the exercise masters, submissions
graded (otter-grader).

The exercises are otter-grader *master notebooks* (``notebooks/exercises/NN_*.ipynb``, otter
assign's format: raw cells ``# BEGIN QUESTION`` ... ``# END QUESTION`` around a prompt, a
solution and test cells; a test cell that starts with ``# HIDDEN`` is kept for the grade only).
Two steps, each one call (or one ``amdd-kit lab`` command):

* :func:`build` runs ``otter assign`` on every master notebook and collects, under ``out``
  (default ``build/lab``, git-ignored)::

      student/NN_name.ipynb      hand these out: solutions removed, public checks in the metadata
      instructor/NN_name.ipynb   solutions and every check, hidden ones included
      autograder/NN_name.zip     what :func:`grade` (or ``otter run``) grades a submission with

* :func:`grade` grades a folder of submitted notebooks without Docker (``otter``'s non-container
  runner, in this Python environment, on the instructor's run and stores) and writes one table:
  a row per submission, its score, and the points of every task.

Both read the same autograder zips (:func:`build` writes them, :func:`grade` runs them), so they
live together. What the exercise notebooks themselves call (``grader.check``, the exercises'
data) is :mod:`amdd_kit.lab`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from . import paths

log = logging.getLogger(__name__)

__all__ = ["EXERCISES_DIR", "DEFAULT_BUILD", "exercise_notebooks", "assignment_name", "build",
           "LabBuild", "grade"]

#: Master notebooks, relative to the project root.
EXERCISES_DIR = "notebooks/exercises"
#: Default build folder (git-ignored: ``build/`` in ``.gitignore``).
DEFAULT_BUILD = "build/lab"


# -- the master notebooks -------------------------------------------------------------------
def exercise_notebooks(folder: str | Path | None = None,
                       names: Sequence[str] | None = None) -> list[Path]:
    """The master notebooks ``NN_name.ipynb`` of ``folder`` (default ``notebooks/exercises``).

    ``names`` picks some: a number (``"03"``, ``3``) or a name with or without ``.ipynb``.
    """
    folder = paths.resolve(folder or EXERCISES_DIR)
    found = sorted(p for p in folder.glob("[0-9]*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no exercise notebooks (NN_name.ipynb) in {folder}")
    if not names:
        return found
    picked = []
    for item in names:
        text = str(item).removesuffix(".ipynb")
        hits = [p for p in found if p.stem == text or
                (text.isdigit() and p.stem.split("_")[0] == f"{int(text):02d}")]
        if not hits:
            raise ValueError(f"no exercise notebook {item!r}; have {[p.stem for p in found]}")
        picked += hits
    return picked


def assignment_name(nb: Mapping[str, Any]) -> str:
    """The lab a notebook belongs to: otter's ``assignment_name`` in its metadata, or ""."""
    return str(nb.get("metadata", {}).get("otter", {}).get("assignment_name") or "")


# -- build --------------------------------------------------------------------------------
@dataclass
class LabBuild:
    """What :func:`build` wrote: per lab (notebook stem) the three files and the questions."""

    out: Path
    labs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per lab: its questions, points and files (relative to ``out``)."""
        rows = [{"lab": k, "questions": len(v["questions"]), "points": v["points"],
                 "student": str(v["student"].relative_to(self.out)),
                 "autograder": str(v["autograder"].relative_to(self.out))}
                for k, v in self.labs.items()]
        return pd.DataFrame(rows)


@contextlib.contextmanager
def _quiet(enabled: bool = True) -> Iterator[None]:
    """Silence otter's prints (it reports every step on stdout)."""
    if not enabled:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def build(out: str | Path | None = None, notebooks: Sequence[str] | None = None,
          run_tests: bool = False, folder: str | Path | None = None,
          quiet: bool = True) -> LabBuild:
    """Student, instructor and autograder versions of the exercise notebooks.

    Args:
        out: build folder (default ``build/lab`` under the project root); each lab's three
            files are replaced, other files are left alone.
        notebooks: which labs (see :func:`exercise_notebooks`); default all.
        run_tests: let ``otter assign`` execute each solution notebook against its checks (needs
            the demo run and stores; minutes). The test suite does this with :func:`grade`.
        folder: where the master notebooks are (default ``notebooks/exercises``).
        quiet: hide otter's own messages.
    """
    from otter.assign import main as otter_assign

    out = paths.resolve(out or DEFAULT_BUILD)
    result = LabBuild(out)
    for sub in ("student", "instructor", "autograder"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for master in exercise_notebooks(folder, notebooks):
        work = Path(tempfile.mkdtemp(prefix=f"amdd-lab-{master.stem}-"))
        try:
            try:
                with _quiet(quiet):
                    otter_assign(str(master), str(work / "dist"), no_run_tests=not run_tests,
                                 no_pdfs=True)
            except RuntimeError as e:        # run_tests: otter lists every check's result
                failed = [ln.strip() for ln in str(e).splitlines()
                          if ln.strip().endswith("result:") or "Error" in ln]
                raise RuntimeError(f"{master.name}: the solutions fail their checks: "
                                   f"{'; '.join(failed) or str(e)}") from e
            dist = work / "dist"
            zips = sorted((dist / "autograder").glob("*.zip"))
            if len(zips) != 1:
                raise RuntimeError(f"otter assign wrote {len(zips)} autograder zips for "
                                   f"{master.name}")
            files = {"student": out / "student" / master.name,
                     "instructor": out / "instructor" / master.name,
                     "autograder": out / "autograder" / f"{master.stem}.zip"}
            shutil.copyfile(dist / "student" / master.name, files["student"])
            shutil.copyfile(dist / "autograder" / master.name, files["instructor"])
            shutil.copyfile(zips[0], files["autograder"])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        tests = json.loads(files["instructor"].read_text())["metadata"]["otter"]["tests"]
        points = _points(files["autograder"])
        result.labs[master.stem] = {**files, "questions": list(tests),
                                    "points": float(sum(points.values())), "per_question": points}
        log.info("lab %s: %d questions", master.stem, len(tests))
    return result


def _points(autograder_zip: Path) -> dict[str, float]:
    """Points of each question of an autograder zip (read from its ``tests/*.py``)."""
    out = {}
    with zipfile.ZipFile(autograder_zip) as z:
        for name in sorted(z.namelist()):
            if name.startswith("tests/") and name.endswith(".py"):
                m = re.search(r"^points\s*=\s*([0-9.]+)", z.read(name).decode(), re.M)
                out[Path(name).stem] = float(m.group(1)) if m else 1.0
    return out


def _zip_assignment(autograder_zip: Path) -> str:
    with zipfile.ZipFile(autograder_zip) as z:
        return str(json.loads(z.read("otter_config.json")).get("assignment_name", ""))


# -- grade --------------------------------------------------------------------------------
def _prepared(src: Path, dst: Path, kernel: str, params: Mapping[str, Any] | None) -> None:
    """A copy of a submission for grading: the instructor's kernel, and ``params`` injected
    after its ``parameters`` cell (papermill's injection: the instructor's run and stores)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(src))   # papermill's reader: every cell gets its tags list
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    if params:
        nb = parameterize_notebook(nb, dict(params), kernel_name=kernel, language="python")
    nbformat.write(nb, dst)


def _otter_run(notebook: Path, autograder: Path, timeout: float, env: Mapping[str, str]):
    """``otter run`` on one notebook -> otter's ``GradingResults`` (``-p`` pickles them into
    the working folder). After ``timeout`` s its process group is killed; the kernel, which
    jupyter_client starts in a session of its own, exits with its parent (``JPY_PARENT_PID``)."""
    import signal
    import subprocess
    import sys

    import dill

    out = notebook.parent / "results"
    out.mkdir()
    cmd = [sys.executable, "-m", "otter", "run", "-a", str(autograder), "-o", str(out),
           "--no-logo", "-p", str(notebook)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env}, cwd=out, start_new_session=True)
    try:
        log_text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"ran over {timeout:g} s (an endless loop?); not graded") from None
    if proc.returncode != 0 or not (out / "results.pkl").exists():
        last = [ln for ln in log_text.splitlines() if ln.strip()][-1:] or ["no output"]
        raise RuntimeError(f"otter run failed (exit {proc.returncode}): {last[0]}")
    with open(out / "results.pkl", "rb") as f:
        return dill.load(f)


def grade(submissions: str | Path, build_dir: str | Path | None = None,
          out: str | Path | None = None, params: Mapping[str, Any] | None = None,
          kernel: str | None = None, timeout: float = 900.0, jobs: int = 1,
          progress: bool = True) -> pd.DataFrame:
    """Grade every ``*.ipynb`` under ``submissions`` and write the grade table.

    Each submission is executed from the top in a fresh kernel of this environment by
    ``otter run`` (no Docker), every check of its lab runs (hidden ones included), and the
    points are summed.

    Args:
        submissions: a folder of submitted notebooks (subfolders are searched, e.g. one per
            student; ``.ipynb_checkpoints`` is skipped) or a single notebook.
        build_dir: the folder :func:`build` wrote (its ``autograder/*.zip``).
        out: the CSV to write (default ``grades.csv`` in the submissions folder).
        params: notebook parameters injected into every submission, e.g.
            ``{"run_dir": "runs/demo"}``, so that all are graded on the same run and stores.
        kernel: Jupyter kernel to run them in (default: the one ``amdd-kit series`` picks).
        timeout: seconds one submission may take; a notebook that runs longer is stopped and
            gets an ``error`` (an endless loop must not hold up the class).
        jobs: submissions graded at the same time (each takes about one CPU core).

    Returns:
        The table: ``submission`` (path relative to the folder), ``lab``, ``score``,
        ``possible``, ``percent``, ``error`` ("" when graded), ``seconds`` (the run and its
        checks), then one column per question.
        Relative paths inside the notebooks resolve against this project's root
        (``$AMDD_PROJECT_ROOT`` is set for the kernels when unset).
    """
    from tqdm.auto import tqdm

    from .series import resolve_kernel

    src = Path(submissions)
    if not src.exists():
        raise FileNotFoundError(f"no submissions at {src}")
    files = [src] if src.is_file() else sorted(
        p for p in src.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not files:
        raise FileNotFoundError(f"no .ipynb files under {src}")
    build_dir = paths.resolve(build_dir or DEFAULT_BUILD)
    zips = {_zip_assignment(z): z for z in sorted((build_dir / "autograder").glob("*.zip"))}
    if not zips:
        raise FileNotFoundError(f"no autograder zips in {build_dir / 'autograder'}: run "
                                "`amdd-kit lab build` first")
    kernel = resolve_kernel(kernel)
    base = src.parent if src.is_file() else src
    env = {paths.ENV_ROOT: os.environ.get(paths.ENV_ROOT) or str(paths.project_root())}

    def one(f: Path) -> dict[str, Any]:
        row: dict[str, Any] = {"submission": f.relative_to(base).as_posix(), "lab": "",
                               "score": 0.0, "possible": float("nan"), "error": ""}
        start = time.perf_counter()
        try:
            row["lab"] = name = assignment_name(json.loads(f.read_text()))
            if not name:
                raise ValueError("not a lab notebook (no otter assignment name in its "
                                 "metadata): hand out the notebooks of build/lab/student/")
            if name not in zips:
                raise ValueError(f"no autograder for lab {name!r} in {build_dir}: run "
                                 "`amdd-kit lab build`")
            possible = _points(zips[name])
            row["possible"] = float(sum(possible.values()))
            with tempfile.TemporaryDirectory(prefix="amdd-grade-") as tmp:
                copy = Path(tmp) / f"{name}.ipynb"
                _prepared(f, copy, kernel, params)
                res = _otter_run(copy, zips[name], timeout, env)
            for q in possible:
                tf = res.results.get(q)
                row[q] = float(tf.score) if tf is not None else 0.0
            row["score"] = float(sum(row[q] for q in possible))
        except (ValueError, OSError, RuntimeError) as e:   # JSONDecodeError is a ValueError
            row["error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.warning("%s: %s", f, row["error"])
        row["seconds"] = round(time.perf_counter() - start, 1)
        return row

    # each submission runs in its own processes: threads only wait for them
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        rows = list(tqdm(pool.map(one, files), total=len(files), desc="grading",
                         disable=not progress))
    questions = list(dict.fromkeys(k for r in rows for k in r
                                   if k not in ("submission", "lab", "score", "possible",
                                                "error", "seconds")))
    table = pd.DataFrame(rows, columns=["submission", "lab", "score", "possible", "error",
                                        "seconds"] + questions)
    table.insert(4, "percent", (100 * table["score"] / table["possible"]).round(1))
    out = Path(out) if out else base / "grades.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return table

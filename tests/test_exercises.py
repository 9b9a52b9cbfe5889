"""The course lab: exercise notebooks (otter-grader masters), their build, and grading.

Static checks (seconds): the masters' hygiene and structure, that the series runner does not pick
them up, and that ``amdd-kit lab build`` writes student versions without solution text or hidden
checks. The grading test (marked ``notebooks``: it executes every lab twice on the session's
series run) grades each instructor version (full marks: every check passes, hidden ones included)
and each unchanged student version (zero: every check of every task fails) with
``amdd-kit lab grade``, and reads the grade table it wrote.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from amdd_kit import course
from amdd_kit.series import declared_parameters, list_notebooks

REPO = Path(__file__).resolve().parents[1]
MASTERS = sorted((REPO / "notebooks" / "exercises").glob("[0-9]*.ipynb"))


def _src(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _questions(cells: list[dict]) -> list[dict]:
    """The question blocks of an otter master: prompt, solution and test cells of each."""
    out, q, part = [], None, None
    for c in cells:
        text = _src(c).strip()
        if c["cell_type"] == "raw" and text.startswith("# BEGIN QUESTION"):
            q = {"config": text, "prompt": [], "solution": [], "tests": []}
            part = "prompt"
        elif c["cell_type"] == "raw" and text.startswith("# END QUESTION"):
            out.append(q)
            q = part = None
        elif q is not None and c["cell_type"] == "raw":
            word = text.split()[1:3]
            part = {("BEGIN", "SOLUTION"): "solution", ("BEGIN", "TESTS"): "tests"}.get(
                tuple(word), None)
        elif q is not None and part:
            q[part].append(c)
    return out


def _solution_lines(question: dict) -> list[str]:
    """The code otter assign must strip: lines inside ``# BEGIN/END SOLUTION`` blocks and the
    right-hand side of lines marked ``# SOLUTION``."""
    lines, inside = [], False
    for c in question["solution"]:
        for line in _src(c).splitlines():
            s = line.strip()
            if s.startswith("# BEGIN SOLUTION"):
                inside = True
            elif s.startswith("# END SOLUTION"):
                inside = False
            elif inside and s and not s.startswith("#"):
                lines.append(s)
            elif s.endswith("# SOLUTION"):
                body = s[: -len("# SOLUTION")].strip()
                lines.append(body.split("=", 1)[1].strip() if re.match(r"^[\w., ]+=[^=]", body)
                             else body)
    return [ln for ln in lines if len(ln) >= 12]


def _text(nb: dict) -> str:
    """Everything a reader of a notebook can see: cell sources and the checks in its metadata."""
    tests = nb["metadata"].get("otter", {}).get("tests", {})
    return "\n".join([_src(c) for c in nb["cells"]] + [str(t) for t in tests.values()])


def test_exercises_are_not_in_the_series():
    series = list_notebooks(REPO / "notebooks")
    assert series and all(p.parent == REPO / "notebooks" for p in series)
    assert not set(MASTERS) & set(series)
    chapters = {p.name[:2] for p in MASTERS}
    assert {"01", "02", "03", "04", "05", "06"} <= chapters, chapters
    assert course.exercise_notebooks() == MASTERS


def test_instructor_tools_and_notebook_helpers_live_apart():
    """``course`` builds and grades (what an instructor runs), ``lab`` is what an exercise
    notebook calls; neither re-exports the other's names."""
    from amdd_kit import lab
    for name in ("build", "grade", "exercise_notebooks", "LabBuild"):
        assert getattr(course, name).__module__ == "amdd_kit.course" and not hasattr(lab, name)
    for name in ("grader", "messy_fakeavceleb", "silence_tables"):
        assert getattr(lab, name).__module__ == "amdd_kit.lab" and not hasattr(course, name)


@pytest.mark.parametrize("nb", MASTERS, ids=lambda p: p.name)
def test_exercise_hygiene(nb):
    data = json.loads(nb.read_text())
    cells = data["cells"]
    assert (data["nbformat"], data["nbformat_minor"]) >= (4, 5), "save as nbformat 4.5"
    ids = [c.get("id") for c in cells]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id"
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, "committed executed"
    assert cells[0]["cell_type"] == "markdown" and _src(cells[0]).startswith("# "), "a title first"
    assert data["metadata"]["kernelspec"]["name"] == "amdd-kit"
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "run_dir" in _src(params[0]), "one parameters cell with run_dir"
    assert set(re.findall(r"^(\w+)\s*=", _src(params[0]), re.M)) <= set(declared_parameters(nb))
    # otter's assignment config: named like the file, checks kept in the notebook metadata as
    # exception-based tests (their AssertionError message is what a student reads)
    conf = [_src(c) for c in cells if c["cell_type"] == "raw"
            and _src(c).startswith("# ASSIGNMENT CONFIG")]
    assert len(conf) == 1
    assert f"name: {nb.stem}\n" in conf[0] and "files: false" in conf[0] \
        and "ok_format: false" in conf[0], conf[0]
    qs = _questions(cells)
    assert 3 <= len(qs) <= 6, f"{len(qs)} tasks"
    for q in qs:
        name = re.search(r"name: (\w+)", q["config"]).group(1)
        prompt = "".join(_src(c) for c in q["prompt"])
        assert "**Task" in prompt and "Hint" in prompt, f"{name}: brief and hint"
        assert _solution_lines(q), f"{name}: no solution code"
        tests = [_src(c) for c in q["tests"]]
        hidden = [t for t in tests if t.lstrip().startswith("# HIDDEN")]
        assert hidden and len(hidden) < len(tests), f"{name}: needs public and hidden checks"
        assert all("def test_" in t and "assert" in t for t in tests), name
    # teaching: prose between steps (raw otter markers count as a break)
    kinds = "".join(c["cell_type"][0] for c in cells)
    assert max(len(m) for m in re.findall("c+", kinds)) <= 3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``amdd-kit lab build`` into a temporary folder (otter assign, no execution)."""
    out = tmp_path_factory.mktemp("lab") / "build"
    r = subprocess.run([sys.executable, "-m", "amdd_kit.cli", "lab", "build", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_build_writes_three_versions_and_hides_solutions(built):
    for master in MASTERS:
        student = built / "student" / master.name
        instructor = built / "instructor" / master.name
        zip_path = built / "autograder" / f"{master.stem}.zip"
        assert student.exists() and instructor.exists() and zip_path.exists(), master.stem
        s_nb, i_nb = json.loads(student.read_text()), json.loads(instructor.read_text())
        text, i_text = _text(s_nb), _text(i_nb)
        cells = json.loads(master.read_text())["cells"]
        qs = _questions(cells)
        names = [re.search(r"name: (\w+)", q["config"]).group(1) for q in qs]
        # what the master shows students on purpose (prompts, hints, given code)
        hidden_cells = {id(c) for q in qs for c in q["solution"] + q["tests"]}
        shown = "\n".join(_src(c) for c in cells if id(c) not in hidden_cells)
        for q, name in zip(qs, names):
            for line in _solution_lines(q):
                if line not in shown:
                    assert line not in text, f"{master.stem}/{name}: solution left in: {line!r}"
            for t in q["tests"]:
                body = _src(t)
                if body.lstrip().startswith("# HIDDEN"):
                    first = body.splitlines()[1].strip()   # "def test_...(...):"
                    assert first not in text, f"{master.stem}/{name}: hidden check {first}"
                    assert first in i_text
            assert f'grader.check("{name}")' in text, f"{name}: no check cell"
        assert set(s_nb["metadata"]["otter"]["tests"]) == set(names)
        assert "hidden=True" not in json.dumps(s_nb["metadata"]["otter"]["tests"])
        assert "hidden=True" in json.dumps(i_nb["metadata"]["otter"]["tests"])
        assert s_nb["metadata"]["otter"]["assignment_name"] == master.stem
        with zipfile.ZipFile(zip_path) as z:
            assert {f"tests/{n}.py" for n in names} <= set(z.namelist())
        # the student version keeps the parameters cell the grader injects into
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in s_nb["cells"])


def test_grade_reports_what_it_cannot_grade(built, tmp_path):
    """A row with the reason, never a traceback: no notebook, not a lab, and a notebook that
    never ends (stopped after the timeout, its kernel with it)."""
    import nbformat
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(REPO / "notebooks" / "04_evaluate.ipynb", subs / "not_a_lab.ipynb")
    (subs / "broken.ipynb").write_text("{ not json")
    endless = nbformat.read(built / "student" / MASTERS[0].name, as_version=4)
    endless.cells.insert(0, nbformat.v4.new_code_cell("while True:\n    pass"))
    nbformat.write(endless, subs / "endless.ipynb")
    table = course.grade(subs, build_dir=built, timeout=8, progress=False)
    assert list(table["submission"]) == ["broken.ipynb", "endless.ipynb", "not_a_lab.ipynb"]
    assert table["error"].str.len().gt(0).all() and (table["score"] == 0).all(), table
    assert "not a lab notebook" in table.loc[2, "error"]
    assert "ran over 8 s" in table.loc[1, "error"] and table.loc[1, "seconds"] < 60, table.loc[1]
    assert table.loc[1, "lab"] == MASTERS[0].stem and table.loc[1, "possible"] > 0
    assert (subs / "grades.csv").exists()


@pytest.mark.notebooks
def test_solved_labs_get_full_marks_and_blank_ones_zero(built, series, tmp_path):
    """Every instructor version passes every check; every unchanged student version fails every
    check of every task (exception-based checks give partial credit, so a task scores 0 only
    when all of its checks fail, and full marks only when all pass)."""
    # the run and stores of notebooks 01 and 03; lab 06 measures the leading silences itself
    # (rendering data_dir/shortcut, which notebook 06 then reuses)
    run = series.run("03")
    subs = tmp_path / "submissions"
    for master in MASTERS:
        for kind, who in (("instructor", "solved"), ("student", "blank")):
            (subs / who).mkdir(parents=True, exist_ok=True)
            shutil.copy(built / kind / master.name, subs / who / master.name)
    out = tmp_path / "grades.csv"
    r = subprocess.run([sys.executable, "-m", "amdd_kit.cli", "lab", "grade", str(subs),
                        "--build", str(built), "--out", str(out), "--jobs", "2",
                        "-p", "run_dir", str(run), "-p", "data_dir", str(series.data_dir)],
                       capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(out, keep_default_na=False)
    print("\n" + table.to_string(index=False))
    assert len(table) == 2 * len(MASTERS) and (table["error"] == "").all(), table["error"]
    questions = [c for c in table.columns if c.startswith("q")]
    for row in table.itertuples():
        scores = {q: getattr(row, q) for q in questions if getattr(row, q) != ""}
        if row.submission.startswith("solved/"):
            assert row.score == row.possible > 0, (row.submission, scores)
        else:
            assert row.score == 0 and all(float(v) == 0 for v in scores.values()), \
                (row.submission, scores)

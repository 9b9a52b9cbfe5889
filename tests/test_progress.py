"""The status line of a running notebook (amdd_kit.progress), driven the way nbclient drives it.

A fake clock stands in for time; the hooks receive the cells nbclient would pass. The series
runner's wiring of the hooks through papermill is checked in test_report.py.
"""
from __future__ import annotations

import io

import nbformat

from amdd_kit import progress as P


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _notebook():
    v4 = nbformat.v4
    return v4.new_notebook(cells=[
        v4.new_markdown_cell("# 06 · Title"),
        v4.new_code_cell("epochs = 1", metadata={"tags": ["parameters"]}),
        v4.new_markdown_cell("## Setup\nimports"),
        v4.new_code_cell("import x"),
        v4.new_code_cell("   "),                      # empty: nbclient skips it
        v4.new_markdown_cell("text\n## 1 · Ablation rows\nmore"),
        v4.new_code_cell("train()"),
        v4.new_markdown_cell("## 2 · CAD"),
        v4.new_code_cell("cad()"),
    ])


def _feed(prog: P.NotebookProgress, nb, clock: Clock, seconds: dict[int, float]) -> None:
    """Run the hooks over ``nb``; cell i takes ``seconds.get(i, 1)`` with a tick per second."""
    prog.notebook_start(notebook=nb)
    for i, cell in enumerate(nb.cells):
        prog.cell_start(cell=cell, cell_index=i)
        for _ in range(int(seconds.get(i, 1))):
            clock.t += 1
            prog.tick()


def test_log_lines_name_the_section_and_stay_few_during_a_long_cell():
    clock, out = Clock(), io.StringIO()
    prog = P.NotebookProgress(stream=out, live=False, now=clock)
    nb = _notebook()
    for _ in range(5):                         # the kernel starts: nothing to log yet
        clock.t += 1
        prog.tick()
    assert out.getvalue() == ""
    _feed(prog, nb, clock, {3: 12, 6: 600})   # setup 12 s, a training cell of 10 minutes
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert prog.total == 4 and prog.cell == 4 and prog.section == "2 · CAD"
    assert lines[0].strip() == "## start · cell 0/4 · 0:05"   # the clock counts the start-up
    assert any(ln.strip().startswith("## Setup · cell 2/4") for ln in lines)
    training = [ln for ln in lines if "## 1 · Ablation rows · cell 3/4" in ln]
    # signs of life during the 600 s cell: one line a minute, not one a second
    assert 9 <= len(training) <= 11, lines
    assert training[-1].endswith("(this cell 10:00)") or "(this cell 9:" in training[-1]
    assert len(lines) <= 14, lines
    # the section after the training starts its own clock: no "(this cell ...)" of the last cell
    assert lines[-1].strip().startswith("## 2 · CAD · cell 3/4") and "this cell" not in lines[-1]


def test_live_line_is_redrawn_in_place_and_cleared():
    clock, out = Clock(), io.StringIO()
    prog = P.NotebookProgress(stream=out, live=True, now=clock)
    clock.t += 3
    prog.tick()
    assert out.getvalue() == "\r    starting the kernel · 0:03"
    _feed(prog, _notebook(), clock, {6: 75})
    text = out.getvalue()
    assert "\n" not in text                          # one line, rewritten with \r
    assert text.count("\r") >= 75                    # its clock moves every second
    assert "## 1 · Ablation rows · cell 3/4 · 1:" in text and "(this cell 1:15)" in text
    prog.clear()
    assert out.getvalue().endswith("\r") and out.getvalue()[:-1].endswith(" ")


def test_clock_and_heading():
    assert P.clock(75.4) == "1:15" and P.clock(3725) == "1:02:05" and P.clock(0) == "0:00"
    assert P.section_heading("intro\n## 3 · Cross-dataset\n### sub") == "3 · Cross-dataset"
    assert P.section_heading("# Title\n### sub") is None

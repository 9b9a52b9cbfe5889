"""The live lab: notebooks opened in a real JupyterLab, driven by headless Chromium.

After the tiny series has produced a run (the session's ``series`` fixture: notebooks 01 and
03), a throw-away project folder is laid out like a student's checkout
(:func:`labdriver.lab_project`: ``notebooks/``, ``pyproject.toml``, and ``runs/demo`` /
``data/synthetic`` linked to the series' run and data), JupyterLab is started there on a free
port, and Playwright drives Debian's ``chromium``:

* notebook 05 with its shipped defaults (``run_dir = "runs/demo"``, live widgets): Run All,
  change the space dropdown, click a point on the map, reload the page; from the DOM: the map
  has points, the clip view has one image per frame and a log-mel, the picture survives the
  reload, and the browser console logged no error;
* every other notebook: its parameters and setup cells run with the shipped defaults (the
  kernel starts in ``notebooks/``, so this checks :mod:`amdd_kit.paths`).

Screenshots and the timings (``lab_timings.json``) are kept under ``$AMDD_TEST_DIR/lab`` when
set, else the pytest temp dir.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

import labdriver as L

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]


@pytest.fixture(scope="module")
def playwright_and_chromium():
    pw_mod = pytest.importorskip("playwright.sync_api",
                                 reason="playwright not installed: run `make setup`")
    import browser as B
    if B.ensure_chromium() is None or not Path(L.CHROMIUM).exists():
        msg = ("!! LAB BROWSER CHECK SKIPPED: no /usr/bin/chromium and apt-get unavailable "
               "(or not root)")
        print(msg, file=sys.stderr)
        pytest.skip(msg)
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("jupyter lab is not installed in this interpreter's environment")
    with pw_mod.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def lab(series, tmp_path_factory, playwright_and_chromium):
    run = series.run("03")
    base = Path(os.environ["AMDD_TEST_DIR"]) / "lab" if os.environ.get("AMDD_TEST_DIR") \
        else tmp_path_factory.mktemp("lab")
    base.mkdir(parents=True, exist_ok=True)
    project = L.lab_project(base / "project", run, series.data_dir)
    server = L.Lab(project, base / "jupyter-lab.log")
    try:
        yield server, base
    finally:
        server.close()


def _store_frames(series) -> int:
    from amdd_kit.data.store import ClipStore, store_dir
    return int(ClipStore(store_dir(series.data_dir, "fakeavceleb", "tiny")).frames.shape[1])


def test_notebook_05_explorer_in_jupyterlab(lab, series, playwright_and_chromium):
    server, base = lab
    n_frames = _store_frames(series)
    res = L.explorer_scenario(server, playwright_and_chromium, base / "screenshots", n_frames)
    (base / "lab_timings.json").write_text(json.dumps(res, indent=1))
    print("\n[lab] notebook 05:", json.dumps(res["timings"]))
    assert res["after_run"]["map"]["points"] > 0
    assert res["after_run"]["map"]["width"] >= 650, res["after_run"]["map"]
    assert res["after_run"]["clip"]["images"] == n_frames          # the placeholder's frames
    assert "Click a point" in res["after_run"]["clip"]["title"]
    assert res["after_dropdown"]["dropdowns"][0] == "audio"
    for step in ("after_click", "after_reload"):
        clip = res[step]["clip"]
        assert clip["images"] == n_frames and clip["heatmaps"] >= 1, (step, clip)
        assert clip["subplots"] == n_frames + 1, (step, clip)
        assert res[step]["map"]["points"] > 0, step
    assert res["after_reload"]["clip"]["title"] == res["after_click"]["clip"]["title"]
    assert "trace 0" not in res["after_reload"]["map"]["legend"]
    assert res["console_errors"] == [], res["console_errors"]
    for name in ("05_after_run_all", "05_after_click", "05_after_reload"):
        assert (base / "screenshots" / f"{name}.png").stat().st_size > 10_000


def test_every_notebooks_setup_cells_run_with_shipped_defaults(lab, playwright_and_chromium):
    server, base = lab
    names = sorted(p.name for p in (server.root / "notebooks").glob("*.ipynb")
                   if not p.name.startswith("05_"))
    res = L.setup_cells_scenario(server, playwright_and_chromium, base / "screenshots", names)
    (base / "lab_setup_cells.json").write_text(json.dumps(res, indent=1))
    for name in names:
        assert res[name]["errors"] == [], (name, res[name]["errors"])
        assert all(res[name]["counts"]), (name, res[name])
    assert res["console_errors"] == [], res["console_errors"]
    # nothing was written inside notebooks/ (no stray notebooks/runs, notebooks/data)
    assert sorted(p.name for p in (server.root / "notebooks").iterdir()
                  if not p.name.endswith(".ipynb")) in ([], [".ipynb_checkpoints"])

"""The live lab: notebooks opened in a real JupyterLab, driven by headless Chromium.

After the tiny series has produced a run (the session's ``series`` fixture: notebooks 01 and
03), a throw-away project folder is laid out like a student's checkout
(:func:`labdriver.lab_project`: ``notebooks/``, ``pyproject.toml``, and ``runs/demo`` /
``data/synthetic`` linked to the series' run and data), JupyterLab is started there on a free
port, and Playwright drives Debian's ``chromium``:

* notebook 05 with its shipped defaults (``run_dir = "runs/demo"``, live widgets): Run All
  (section 7b adds a LAV-DF partial fake in code), change the space dropdown, add a video by
  typing its path and another by uploading it, try every colouring after the one with the most
  groups, the one with the fewest and the continuous ``p_fake`` scale, click a point on the map,
  reload the page (again, at most three more times, when JupyterLab's widget manager loses its restore
  race, ipywidgets #4026, as the notebook tells a student to do); from the DOM: the video's windows are stars on the map (legend, point count),
  its clip view and timeline are drawn, each colouring shows its own title, legend or colour
  bar and every point, the clip view has one image per frame and a log-mel, the picture
  survives the reload, and the browser console logged no error (no "Error setting state");
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

import pandas as pd
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


def _colour_groups(run: Path) -> dict[str, int]:
    """The explorer's colour options for the run's embeddings: groups, 0 for a scale."""
    from amdd_kit.ui.embedding_map import COLOR_BY, COLOR_SCALES, correctness
    df = pd.read_parquet(run / "embeddings.parquet")
    df["correctness"] = correctness(df)
    out = {c: int(df[c].astype(str).nunique()) for c in COLOR_BY if c in df}
    out.update({c: 0 for c in COLOR_SCALES if c in df})
    return out


def test_notebook_05_explorer_in_jupyterlab(lab, series, playwright_and_chromium):
    server, base = lab
    n_frames = _store_frames(series)
    run = series.run("03")
    videos = sorted((series.data_dir / "fakeavceleb").rglob("*.mp4"))
    videos = [videos[0], next(v for v in videos[::-1] if v.name != videos[0].name)]
    colourings = _colour_groups(run)
    n_clips = len(pd.read_parquet(run / "embeddings.parquet"))
    res = L.explorer_scenario(server, playwright_and_chromium, base / "screenshots", n_frames,
                              video=str(videos[0]), upload=str(videos[-1]),
                              colourings=colourings)
    (base / "lab_timings.json").write_text(json.dumps(res, indent=1))
    print("\n[lab] notebook 05:", json.dumps(res["timings"]),
          f"extra reloads after the widget manager's race: {res['reload_retries']}")
    assert res["after_run"]["map"]["points"] > n_clips              # the clips and 7b's stars
    assert res["after_run"]["map"]["width"] >= 650, res["after_run"]["map"]
    assert res["after_run"]["clip"]["images"] == n_frames
    assert res["after_run"]["clip"]["title"].startswith("your video (")       # 7b's video
    assert res["after_dropdown"]["dropdowns"][0] == "audio"
    # a video added by its path, then one uploaded: stars on the map, clip view and timeline
    for step, path in (("after_video", videos[0]), ("after_upload", videos[-1])):
        e = res[step]
        stars = e["map"]["points"] - n_clips
        assert stars >= 1 and "your video" in e["map"]["legend"], (step, e["map"])
        assert any(path.name in h for h in e["html"]), e["html"]        # the status names it
        assert e["clip"]["images"] == n_frames and e["clip"]["heatmaps"] >= 1, (step, e["clip"])
        assert e["clip"]["title"].startswith(f"your video ({path.name}), window 0"), e["clip"]
        assert "Grad-CAM" in e["clip"]["title"], e["clip"]
        assert any("nearest clips" in h for h in e["html"]), e["html"]
        if stars > 1:                                    # more than one window: a timeline
            assert e["timeline"]["points"] == stars and path.name in e["timeline"]["title"]
    # every colouring after many groups, few groups and the p_fake scale: its own legend
    walk = res["colourings"]
    assert {(r["from"], r["to"]) for r in walk} == set(L.colouring_walk(colourings))
    total = res["after_upload"]["map"]["points"]
    for r in walk:
        groups = [x for x in r["legend"] if not x.startswith("your video")]
        assert r["title"].endswith(f"coloured by {r['to']}"), r
        assert r["points"] == total, r                               # no stale or lost points
        if colourings[r["to"]]:
            assert len(groups) == colourings[r["to"]] and r["colorbar"] == 0, r
        else:
            assert groups == [] and r["colorbar"] == 1, r
    for step in ("after_click", "after_reload"):
        clip = res[step]["clip"]
        assert clip["images"] == n_frames and clip["heatmaps"] >= 1, (step, clip)
        assert clip["subplots"] == n_frames + 1, (step, clip)
        assert res[step]["map"]["points"] > 0, step
    assert res["after_reload"]["clip"]["title"] == res["after_click"]["clip"]["title"]
    assert "trace 0" not in res["after_reload"]["map"]["legend"]
    assert res["console_errors"] == [], res["console_errors"]
    for name in ("05_after_run_all", "05_after_video", "05_after_click", "05_after_reload"):
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

"""Series runner, run registry, regression detection and offline HTML export
(amdd_kit.series, amdd_kit.registry, amdd_kit.export).

The runner is exercised on throw-away notebooks written into tmp_path (no model, no data):
each kernel start costs a few seconds, so the successful series runs once per module.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from amdd_kit import export as X
from amdd_kit import registry as G
from amdd_kit import series as S
from amdd_kit.config import get_config

# -- throw-away notebooks -------------------------------------------------------------------
WRITER = '''\
import json, pathlib
rec = {"run_dir": run_dir, "config": config, "data_dir": data_dir, "epochs": epochs}
out = pathlib.Path(run_dir)
(out / "writer.json").write_text(json.dumps(rec))
with open(out / "order.txt", "a") as fh:
    fh.write("01\\n")
'''

PLOTTER = '''\
import pathlib, plotly.graph_objects as go
with open(pathlib.Path(run_dir) / "order.txt", "a") as fh:
    fh.write("02\\n")
leaked = sorted(n for n in ("config", "data_dir", "epochs") if n in globals())
print("LEAKED", leaked)
SECRET_CODE_MARKER = 1  # must not appear in the exported HTML (code is hidden)
fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 3]))
fig.show()
print("visible-output-marker")
'''

FAILER = '''\
with open(run_dir + "/order.txt", "a") as fh:
    fh.write("03\\n")
raise ValueError("boom from the third notebook")
'''

AFTER = '''\
open(run_dir + "/order.txt", "a").write("04\\n")
'''

#: widens a real race to make it certain: the kernel is still inside the handler of papermill's
#: last request (kernel_info) when the notebook's kernel is shut down
LINGER = '''\
import time
kernel = get_ipython().kernel
reply = kernel.shell_handlers["kernel_info_request"]
async def reply_then_linger(*args, **kwargs):
    await reply(*args, **kwargs)
    time.sleep(3)
kernel.shell_handlers["kernel_info_request"] = reply_then_linger
'''


def _notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"),
                nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("notebooks")
    _notebook(d / "01_writer.ipynb",
              'run_dir = "runs/x"\nconfig = "paper"\ndata_dir = "nowhere"\n'
              'epochs = 0  # 0: use the config\nx: int = 1\nlive_widgets = True', WRITER)
    _notebook(d / "02_plotter.ipynb", 'run_dir = "runs/x"', PLOTTER)
    _notebook(d / "03_failer.ipynb", 'run_dir = "runs/x"', FAILER)
    _notebook(d / "04_after.ipynb", 'run_dir = "runs/x"', AFTER)
    (d / "README.ipynb").write_text("not part of the series")  # unnumbered: ignored
    return d


@pytest.fixture(scope="module")
def good_series(nb_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    out = runs / "good"   # does not exist yet: the runner must create it and notebooks/
    result = S.run_series(out, config="tiny", data_dir=runs / "data",
                          params={"epochs": 3, "unused": "x"}, notebooks=["1", "02_plotter"],
                          timeout=60, notebooks_folder=nb_dir, progress=True)
    return out, result


# -- discovery and parameters ---------------------------------------------------------------
def test_list_and_select(nb_dir):
    assert [p.name for p in S.list_notebooks(nb_dir)] == [
        "01_writer.ipynb", "02_plotter.ipynb", "03_failer.ipynb", "04_after.ipynb"]
    sel = S.select_notebooks(["3", "01_writer", "02_plotter.ipynb"], nb_dir)
    assert [p.name for p in sel] == ["03_failer.ipynb", "01_writer.ipynb", "02_plotter.ipynb"]
    with pytest.raises(ValueError, match="99"):
        S.select_notebooks(["99"], nb_dir)
    assert set(S.declared_parameters(nb_dir / "01_writer.ipynb")) == {
        "run_dir", "config", "data_dir", "epochs", "x", "live_widgets"}
    assert S.declared_parameters(nb_dir / "01_writer.ipynb")["config"] == '"paper"'
    assert S.parameters_for(nb_dir / "02_plotter.ipynb",
                            {"run_dir": "r", "epochs": 2}) == {"run_dir": "r"}


def test_missing_kernel_names_the_fix_when_python3_points_elsewhere(tmp_path, monkeypatch):
    """A kernelspec for another interpreter must not be used: with neither the project kernel
    nor python3 running sys.executable, the error names the command that registers one."""
    def spec(name: str, exe: str) -> None:
        d = tmp_path / "jp" / "kernels" / name
        d.mkdir(parents=True)
        (d / "kernel.json").write_text(json.dumps(
            {"argv": [exe, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
             "display_name": name, "language": "python"}))

    spec("python3", "/nonexistent/bin/python3")
    spec("amdd-kit-elsewhere", "/bin/sh")            # exists, but is not this interpreter
    spec("amdd-kit-here", sys.executable)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jp"))
    monkeypatch.setattr(S, "PROJECT_KERNEL", "amdd-kit-here")
    assert S.resolve_kernel() == "amdd-kit-here"
    monkeypatch.setattr(S, "PROJECT_KERNEL", "amdd-kit-elsewhere")
    with pytest.raises(S.MissingKernelError, match=r"ipykernel install --sys-prefix --name "
                                                   r"amdd-kit-elsewhere") as err:
        S.resolve_kernel()
    assert "/bin/sh" in str(err.value) and "/nonexistent/bin/python3" in str(err.value)
    with pytest.raises(ValueError, match="no Jupyter kernel"):
        S.resolve_kernel("no-such-kernel-xyz")
    assert S._python_spec_is_ours(["python"]) and S._python_spec_is_ours([sys.executable])
    assert not S._python_spec_is_ours(["/usr/bin/python2.7"])


def test_parameters_line_papermill_cannot_read_is_an_error(tmp_path):
    """papermill's parser skips a parameters line with a second '=': named, not silently lost."""
    bad = _notebook(tmp_path / "01_bad.ipynb", 'run_dir = "x"\nepochs = 0  # 0 = the config',
                    "pass")
    with pytest.raises(ValueError, match="line 2"):
        S.declared_parameters(bad)


# -- the runner -----------------------------------------------------------------------------
def test_series_runs_in_order_and_passes_only_declared_parameters(good_series, capsys):
    out, result = good_series
    assert result.ok and result.error is None
    assert [p.name for p in result.executed] == ["01_writer.ipynb", "02_plotter.ipynb"]
    assert all(p.parent == out.absolute() / "notebooks" and p.is_file()
               for p in result.executed)
    assert (out / "order.txt").read_text().split() == ["01", "02"]
    rec = json.loads((out / "writer.json").read_text())
    assert rec["epochs"] == 3 and rec["config"] == "tiny"
    assert Path(rec["run_dir"]) == out.absolute()
    assert Path(rec["data_dir"]) == (out.parent / "data").absolute()
    # a batch run switches live widgets off where a notebook declares them (BATCH_PARAMS)
    nb1 = nbformat.read(str(out / "notebooks" / "01_writer.ipynb"), 4)
    assert any("live_widgets = False" in c.source for c in nb1.cells
               if "injected-parameters" in c.metadata.get("tags", []))
    # 02 declares only run_dir: nothing else was injected into it
    nb = nbformat.read(str(out / "notebooks" / "02_plotter.ipynb"), 4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "run_dir" in injected[0].source
    assert "epochs" not in injected[0].source and "unused" not in injected[0].source
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "LEAKED []" in printed
    assert set(result.seconds) == {"01_writer.ipynb", "02_plotter.ipynb"}
    # registered as ok (no report notebook in the series did it)
    reg = G.load_registry(out.parent)
    assert list(reg["status"]) == ["ok"] and reg.loc[0, "run_dir"] == str(out.absolute())
    assert result.report is None  # no 07 notebook in this series


def test_failing_notebook_stops_series_and_is_registered(nb_dir, tmp_path, monkeypatch, capsys):
    """Through the command line: exit code 1, one-line reason, later notebooks not run."""
    from amdd_kit.cli import main
    monkeypatch.setenv("AMDD_KIT_NOTEBOOKS", str(nb_dir))
    out = tmp_path / "runs" / "bad"
    code = main(["series", "--out", str(out), "--data", str(tmp_path / "data"),
                 "-p", "epochs", "2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "boom from the third notebook" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "[3/4] 03_failer.ipynb FAILED" in captured.out
    # the closing summary still comes, and names what did not run
    assert "What this run found" in captured.out
    assert "03_failer.ipynb" not in captured.out.split("not run")[-1].split("\n")[0]
    assert "04_after.ipynb (amdd-kit series --out" in captured.out
    assert (out / "order.txt").read_text().split() == ["01", "02", "03"]
    kept = out / "notebooks" / "03_failer.ipynb"
    assert kept.is_file() and not (out / "notebooks" / "04_after.ipynb").exists()
    errors = [o for c in nbformat.read(str(kept), 4).cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "ValueError"
    reg = G.load_registry(out.parent)
    assert list(reg["status"]) == ["failed"]
    assert "boom" in reg.loc[0, "error"] and "03_failer" in reg.loc[0, "error"]


def test_unknown_notebook_is_a_clear_error(nb_dir, tmp_path):
    with pytest.raises(ValueError, match="'5' matches 0"):
        S.run_series(tmp_path / "r", notebooks=["5"], notebooks_folder=nb_dir)


# -- registry and regressions on fabricated runs --------------------------------------------
def _fake_run(runs: Path, name: str, bal: float, auc: float, attr: float,
              recall: dict[str, float], cross_auc: float | None = None) -> Path:
    run = runs / name
    run.mkdir(parents=True)
    get_config("tiny").to_json(run / "config.json")
    metrics = {"balanced_accuracy": bal, "auc": auc, "attribution_accuracy": attr,
               "detection_recall": recall, "n_test": 40}
    if cross_auc is not None:
        metrics["cross_dataset"] = {"lavdf": {"real_recall": 0.5, "fake_recall": 0.6,
                                              "auc": cross_auc, "n": 10}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_registry_and_regressions(tmp_path):
    runs = tmp_path / "runs"
    data = tmp_path / "data"
    (data / "stores" / "fakeavceleb-tiny").mkdir(parents=True)
    manifest = data / "stores" / "fakeavceleb-tiny" / "manifest.parquet"
    pd.DataFrame({"path": ["a.mp4", "b.mp4"]}).to_parquet(manifest)
    fp1 = G.data_fingerprint(data)
    assert re.fullmatch(r"[0-9a-f]{12}", fp1)

    r1 = _fake_run(runs, "base", 0.80, 0.90, 0.60, {"faceswap": 0.9, "rtvc": 0.7}, 0.7)
    r2 = _fake_run(runs, "nightly", 0.81, 0.85, 0.61, {"faceswap": 0.8, "rtvc": 0.72}, 0.75)
    G.register_run(r1, "ok", data_dir=data)
    pd.DataFrame({"path": ["a.mp4", "c.mp4"]}).to_parquet(manifest)  # the data changed
    row = G.register_run(r2, "ok", data_dir=data)
    assert row["data_fingerprint"] != fp1

    reg = G.load_registry(runs)
    assert list(reg.columns[:10]) == ["run_id", "time", "config", "config_hash",
                                      "data_fingerprint", "status", "balanced_accuracy", "auc",
                                      "attribution_accuracy", "run_dir"]
    assert list(reg["run_id"]) == ["base", "nightly"]
    assert list(reg["config"]) == ["tiny", "tiny"]
    assert (reg["config_hash"] == get_config("tiny").hash()).all()
    assert reg.loc[1, "auc"] == pytest.approx(0.85)
    assert json.loads(reg.loc[1, "detection_recall"]) == {"faceswap": 0.8, "rtvc": 0.72}

    # registering unchanged metrics again updates the row instead of duplicating it
    G.register_run(r2, "ok", data_dir=data)
    assert len(G.load_registry(runs)) == 2

    table = G.compare_runs(reg)  # last run vs the previous successful one
    assert table.attrs["base_run"] == "base" and table.attrs["current_run"] == "nightly"
    t = table.set_index("metric")
    assert t.loc["auc", "delta"] == pytest.approx(-0.05) and t.loc["auc", "regression"]
    assert t.loc["balanced_accuracy", "delta"] == pytest.approx(0.01)
    assert not t.loc["balanced_accuracy", "regression"]
    assert t.loc["recall[faceswap]", "delta"] == pytest.approx(-0.1)
    assert t.loc["recall[faceswap]", "kind"] == "per_method"
    assert t.loc["lavdf.auc", "delta"] == pytest.approx(0.05)

    assert G.regressions(reg) == ["auc"]
    assert G.regressions(runs, kinds=("headline", "per_method")) == ["auc", "recall[faceswap]"]
    assert G.regressions(reg, threshold=0.1) == []
    assert G.regressions(reg, current="base", base="nightly") == []  # the other way round: only gains
    assert "REGRESSION" in G.regression_banner(table)
    assert "No regression" in G.regression_banner(G.compare_runs(reg, threshold=0.2))
    assert "No earlier run" in G.regression_banner(G.compare_runs(reg, current="base"))
    with pytest.raises(ValueError, match="not in the registry"):
        G.compare_runs(reg, base="nope")

    # a failed run without metrics: registered, never used as a base
    failed = runs / "broken"
    failed.mkdir()
    G.register_run(failed, "failed", error="03_train.ipynb: RuntimeError: out of memory\nmore")
    reg = G.load_registry(runs)
    assert reg.loc[2, "status"] == "failed" and pd.isna(reg.loc[2, "auc"])
    assert reg.loc[2, "error"] == "03_train.ipynb: RuntimeError: out of memory more"
    r3 = _fake_run(runs, "fixed", 0.70, 0.80, 0.5, {"faceswap": 0.8})
    G.register_run(r3, "ok")
    assert G.compare_runs(runs).attrs["base_run"] == "nightly"
    assert set(G.regressions(runs)) == {"balanced_accuracy", "auc", "attribution_accuracy"}

    page = X.history_page(runs, quiet=True)
    text = page.read_text()
    assert X.external_resources(text) == [] and "Plotly.newPlot(" in text
    assert "REGRESSION" in text and "broken" in text


# -- offline HTML export --------------------------------------------------------------------
def _plotly_header() -> str:
    from plotly.offline import get_plotlyjs
    return next(ln for ln in get_plotlyjs()[:400].splitlines() if "plotly.js v" in ln)


def test_export_html_offline(good_series, tmp_path):
    out, _ = good_series
    executed = out / "notebooks" / "02_plotter.ipynb"
    html_path = X.export_html(executed, tmp_path / "sub" / "report.html")
    page = html_path.read_text()
    assert X.external_resources(page) == []
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page, re.I)
    assert page.count(_plotly_header()) == 1           # plotly.js embedded exactly once
    assert page.count("Plotly.newPlot(") == 1          # the one figure
    assert "visible-output-marker" in page and "SECRET_CODE_MARKER" not in page


def test_export_html_rewrites_cdn_outputs(tmp_path):
    """Outputs that point at a CDN (plotly 'cdn', MathJax) and widget state are made offline;
    without plotly content no plotly.js is embedded."""
    import plotly.graph_objects as go
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    cdn_html = fig.to_html(include_plotlyjs="cdn", full_html=False)
    assert X.external_resources(cdn_html)  # the check itself sees the CDN script
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    cell = nbformat.v4.new_code_cell("fig")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": cdn_html})]
    nb.cells = [nbformat.v4.new_markdown_cell("Equation $x^2$"), cell]
    src = tmp_path / "cdn.ipynb"
    nbformat.write(nb, str(src))
    page = X.export_html(src, tmp_path / "cdn.html").read_text()
    assert X.external_resources(page) == []
    assert page.count(_plotly_header()) == 1 and "Plotly.newPlot(" in page
    plain = nbformat.v4.new_notebook()
    plain.cells = [nbformat.v4.new_markdown_cell("no figures here")]
    nbformat.write(plain, str(tmp_path / "plain.ipynb"))
    page = X.export_html(tmp_path / "plain.ipynb", tmp_path / "plain.html").read_text()
    assert "plotly.js v" not in page and X.external_resources(page) == []
    assert "no figures here" in page


# -- notebook 07 on fabricated runs (no model needed with epochs = 0) -----------------------
def test_retraining_report_notebook_flags_regression(tmp_path):
    """07 through the runner: registers the run, compares with base_run, writes the verdict,
    and the series exports RUN/report.html (offline)."""
    runs = tmp_path / "runs"
    base = _fake_run(runs, "base", 0.80, 0.90, 0.60, {"faceswap": 0.9, "real": 0.8})
    G.register_run(base, "ok")
    demo = _fake_run(runs, "demo", 0.82, 0.85, 0.62, {"faceswap": 0.7, "real": 0.85})
    result = S.run_series(demo, notebooks=["07"], data_dir=tmp_path / "data", timeout=120,
                          params={"base_run": "base", "regression_threshold": 0.03})
    assert result.ok, result.error
    summary = json.loads((demo / "report_summary.json").read_text())
    assert summary["verdict"] == "regression" and summary["regressions"] == ["auc"]
    assert summary["base_run"] == "base" and summary["threshold"] == 0.03
    assert summary["deltas"]["recall[faceswap]"] == pytest.approx(-0.2)
    reg = G.load_registry(runs)
    assert list(reg["run_id"]) == ["base", "demo"]  # registered once, by the notebook
    page = (demo / "report.html").read_text()
    assert result.report == demo.absolute() / "report.html"
    assert X.external_resources(page) == [] and "REGRESSION" in page
    assert page.count("Plotly.newPlot(") == 2  # trend + per-method deltas


def test_registry_reads_the_old_per_method_recall_name(tmp_path):
    """Runs and registries written before the rename keep their detection recall."""
    runs = tmp_path / "runs"
    old = _fake_run(runs, "old", 0.8, 0.9, 0.5, {})
    m = json.loads((old / "metrics.json").read_text())
    m["per_method_recall"] = m.pop("detection_recall") | {"fsgan": 0.4}
    (old / "metrics.json").write_text(json.dumps(m))
    assert json.loads(G.run_record(old)["detection_recall"]) == {"fsgan": 0.4}
    G.register_run(old, "ok")
    index = runs / "index.csv"
    legacy = pd.read_csv(index).rename(columns={"detection_recall": "per_method_recall"})
    legacy.to_csv(index, index=False)
    assert json.loads(G.load_registry(runs).loc[0, "detection_recall"]) == {"fsgan": 0.4}


def test_series_times_merge_over_calls(tmp_path):
    """A series finished in two calls reports the whole series, not the last call."""
    S.write_series_times(tmp_path, {"01_a.ipynb": 40.0, "02_b.ipynb": 300.0}, 341.0)
    out = S.write_series_times(tmp_path, {"02_b.ipynb": 250.0, "03_c.ipynb": 60.0}, 311.0)
    assert out == {"01_a.ipynb": 40.0, "02_b.ipynb": 250.0, "03_c.ipynb": 60.0,
                   "total": 350.0, "last_call": 311.0}
    assert json.loads((tmp_path / "series_times.json").read_text()) == out


def test_series_terminal_is_quiet_shows_progress_and_ends_with_the_lesson(nb_dir, tmp_path):
    """``amdd-kit series`` as a user runs it (a fresh interpreter, Python's own warning filters),
    its output piped as in a log: no ERROR line, warning or notice on a run that succeeds (the
    kernels run with ``KERNEL_QUIET``: ipykernel 7 otherwise warns about TCP without encryption
    once per kernel); the progress hooks reach nbclient through papermill (the parameterised
    notebook's 3 code cells: parameters, injected parameters, body); the lesson closes it."""
    env = {**os.environ, "AMDD_KIT_NOTEBOOKS": str(nb_dir)}
    run = subprocess.run([sys.executable, "-m", "amdd_kit.cli", "series", "--out",
                          str(tmp_path / "r"), "--data", str(tmp_path / "data"), "--notebooks",
                          "02"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stderr == "", run.stderr[-2000:]
    alarming = [ln for ln in run.stdout.splitlines()
                if re.search(r"ERROR|Error|Warning|WARNING|[Dd]eprecat|Traceback", ln)]
    assert not alarming, alarming
    assert re.search(r"^    ## start · cell 0/3 · 0:\d\d$", run.stdout, re.M), run.stdout
    assert "\r" not in run.stdout                       # plain lines in a log
    assert "What this run found" in run.stdout and "not run" in run.stdout


def test_shutdown_does_not_interrupt_a_kernel_that_finished(tmp_path, capfd):
    """jupyter_client's shutdown sends SIGINT before its shutdown request; a kernel still inside
    the handler of papermill's last request then logs ``[IPKernelApp] ERROR | KeyboardInterrupt
    caught in kernel.`` on a notebook that succeeded (seen at the end of notebook 04 of
    ``make demo``). The series' kernel manager (``QuietShutdownKernelManager``) skips that
    interrupt: the shutdown request alone stops the kernel."""
    nb = _notebook(tmp_path / "01_linger.ipynb", 'run_dir = "runs/x"', LINGER)
    result = S.run_series(tmp_path / "r", notebooks=[str(nb)], timeout=60, export=False)
    assert result.ok, result.error
    err = capfd.readouterr().err
    assert "KeyboardInterrupt" not in err and "ERROR" not in err, err[-800:]

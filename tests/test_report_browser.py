"""An exported report renders in headless Chromium without touching the network.

A small notebook with plotly figures (one shown the papermill way, ``fig.show()``, one as HTML
pointing at the plotly CDN) is executed with papermill, exported with
:func:`amdd_kit.export.export_html` and opened in headless Chromium: every ``.js-plotly-plot``
must hold SVG, the NetLog must show no request of the page, and a screenshot is kept
(in ``$AMDD_TEST_DIR`` when set, else the pytest temp dir).

Negative controls prove both checks can fail: a page that loads and fetches from the network is
caught, and a figure without plotly.js draws no SVG.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

import browser as B
from amdd_kit.export import export_html, external_resources

pytestmark = pytest.mark.browser

FIGURES = '''\
import plotly.graph_objects as go
from IPython.display import HTML, display
fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1], mode="lines+markers"))
fig.update_layout(title="shown with fig.show()")
fig.show()
fig2 = go.Figure(go.Bar(x=["real", "fake"], y=[3, 5]))
fig2.update_layout(title="HTML that points at the plotly CDN")
display(HTML(fig2.to_html(include_plotlyjs="cdn", full_html=False)))
'''


@pytest.fixture(scope="module")
def chromium() -> str:
    path = B.ensure_chromium()
    if path is None:
        msg = ("\n" + "!" * 78 + "\n!! BROWSER CHECK SKIPPED: no Chromium and apt-get unavailable "
               "(or not root).\n!! Install Debian's 'chromium' or set AMDD_CHROMIUM to run it."
               "\n" + "!" * 78)
        print(msg, file=sys.stderr)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def keep_dir(tmp_path_factory) -> Path:
    base = os.environ.get("AMDD_TEST_DIR")
    d = Path(base) / "browser" if base else tmp_path_factory.mktemp("browser")
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_exported_report_renders_offline(chromium, tmp_path, keep_dir):
    import papermill as pm
    from amdd_kit.series import resolve_kernel

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Browser check"),
                nbformat.v4.new_code_cell('title = "x"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(FIGURES)]
    src, executed = tmp_path / "figs.ipynb", tmp_path / "figs.out.ipynb"
    nbformat.write(nb, str(src))
    pm.execute_notebook(str(src), str(executed), kernel_name=resolve_kernel(),
                        progress_bar=False, execution_timeout=60)
    page = export_html(executed, tmp_path / "report.html")
    assert external_resources(page.read_text()) == []

    net_log = tmp_path / "netlog.json"
    png = keep_dir / "report_screenshot.png"
    dom = B.render_dom(page, screenshot=png, chromium=chromium, net_log=net_log)
    counts = B.plotly_svg_counts(dom)
    assert len(counts) == 2, f"expected 2 plotly figures in the DOM, found {counts}"
    assert all(c > 0 for c in counts), f"a figure drew no SVG: {counts}"
    assert "main-svg" in dom
    assert B.network_requests(net_log) == []
    assert png.is_file() and png.stat().st_size > 5_000
    shutil.copy(page, keep_dir / "report.html")
    print(f"screenshot kept at {png}")


def test_network_and_svg_checks_can_fail(chromium, tmp_path):
    online = tmp_path / "online.html"
    online.write_text(
        '<html><head><script src="https://cdn.example.invalid/lib.js"></script></head>'
        '<body><script>fetch("https://api.example.invalid/ping").catch(() => 0);</script>'
        "</body></html>")
    assert external_resources(online.read_text()) == [
        "<script src=https://cdn.example.invalid/lib.js>"]
    log = tmp_path / "online.json"
    B.render_dom(online, chromium=chromium, net_log=log)
    requested = B.network_requests(log)
    assert "https://cdn.example.invalid/lib.js" in requested
    assert "https://api.example.invalid/ping" in requested  # made by a script at run time

    # a plotly div whose plotly.js never arrives: the DOM check sees no SVG
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><div class="js-plotly-plot" id="p"></div>'
                      "<script>try { Plotly.newPlot('p', [{y: [1, 2]}]); } catch (e) {}</script>"
                      "</body></html>")
    assert B.plotly_svg_counts(B.render_dom(broken, chromium=chromium)) == [0]


def test_plot_scanner_nesting():
    dom = ('<div class="a js-plotly-plot"><div><svg class="main-svg"></svg><svg></svg></div>'
           '</div><svg></svg><div class="js-plotly-plot"><br><p>no figure</p></div>')
    assert B.plotly_svg_counts(dom) == [2, 0]

"""Offline HTML: an executed notebook as a report page, and the run-history page.

* :func:`export_html` turns an executed notebook into a report that renders **offline**: code
  hidden, plotly.js embedded once, no ``<script src="https://...">`` (no CDN) anywhere
  (``amdd-kit export NB.ipynb OUT.html``; the series runner calls it for notebook 07).
* :func:`history_page` writes the run-history page ``RUNS/report.html`` from the run registry
  (``amdd-kit report --runs RUNS``).
* :func:`external_resources` lists what a page would still fetch from the network.
"""
from __future__ import annotations

import html
import json
import os
import re
import sys
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import nbformat
import pandas as pd
import plotly.io as pio
from nbconvert import HTMLExporter
from plotly.offline import get_plotlyjs

from .registry import HEADLINE_METRICS, compare_runs, load_registry, regression_banner
from .viz.runs import recall_delta_figure, trend_figure

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


# -- the run-history page -----------------------------------------------------------------------
def history_page(runs_dir: str | Path, threshold: float = 0.02, quiet: bool = False) -> Path:
    """``amdd-kit report --runs DIR``: history table + trends + latest comparison.

    Prints the history table to stdout and writes ``DIR/report.html`` (plotly.js embedded,
    renders offline). Returns the HTML path.
    """
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


"""Shared pieces of the figure builders: class colours, offline display and saving."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

#: One fixed colour per attribution class so every figure of the series uses the same colours.
METHOD_COLORS: dict[str, str] = {
    "real": "#2ca02c", "rtvc": "#9467bd", "faceswap": "#d62728", "fsgan": "#ff7f0e",
    "wav2lip": "#1f77b4", "faceswap-wav2lip": "#e377c2", "fsgan-wav2lip": "#8c564b",
}
_PALETTE = ("#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
            "#c5b0d5", "#c49c94", "#f7b6d2")


def setup_offline(renderer: str = "plotly_mimetype") -> str:
    """Make notebook figures work without a CDN; returns the renderer name now in use.

    ``plotly_mimetype`` (the default) stores each figure as its JSON
    (``application/vnd.plotly.v1+json``) and lets the front end draw it with its own plotly.js:
    JupyterLab's bundled plotly extension, VS Code, or :func:`amdd_kit.export.export_html`,
    which embeds plotly.js once per exported page. Nothing needs the network, and an executed
    notebook stays small (the ``notebook`` renderer would embed plotly.js, 4.9 MB, into every
    notebook). Pass ``"plotly_mimetype+notebook"`` for a classic Notebook front end without the
    plotly extension.
    """
    pio.renderers.default = renderer
    return pio.renderers.default


def save_figure(fig: go.Figure, path: str | Path, standalone: bool = False) -> Path:
    """Write ``fig`` as an HTML file that works offline. Parent folders are created.

    By default plotly.js is written once per folder (``plotly.min.js`` beside the figures, about
    4.8 MB) and each figure loads it by a relative path, so a run's dozen figures do not carry a
    dozen copies; keep the folder together when you move it. ``standalone=True`` embeds
    plotly.js in the file itself (one file to e-mail). Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if standalone else "directory",
                   full_html=True)
    return path


def color_for(name: str, i: int) -> str:
    """The class colour of ``name``; other names take the ``i``-th colour of a palette."""
    return METHOD_COLORS.get(name) or _PALETTE[i % len(_PALETTE)]


def ordered(values: np.ndarray) -> list[str]:
    """Unique values, attribution classes first in their label order, then the rest sorted."""
    uniq = set(values.tolist())
    return [m for m in METHOD_COLORS if m in uniq] + sorted(uniq - set(METHOD_COLORS))


def score_bars(scores: dict[str, float], colors: list[str] | str, title: str,
               chance: float | None = None, chance_label: str = "chance",
               y_min: float = 0.0, digits: int = 3, width: int = 640, height: int = 400
               ) -> go.Figure:
    """Bars of named scores with their value written on top ("n/a" for a missing one), and a
    dashed reference line at ``chance`` (what a model without the skill gets)."""
    vals = [float(v) for v in scores.values()]
    fig = go.Figure(go.Bar(x=list(scores), y=vals, marker_color=colors,
                           text=["n/a" if not np.isfinite(v) else f"{v:.{digits}f}" for v in vals],
                           textposition="outside"))
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dash", line_color="grey", annotation_text=chance_label)
    fig.update_layout(title=title, yaxis=dict(range=[y_min, 1.1]), width=width, height=height,
                      showlegend=False)
    return fig

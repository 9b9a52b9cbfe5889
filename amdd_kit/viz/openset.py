"""Open-set figures: rejection-score histograms, AUROC per leave-one-out fold, centroid distances
(notebook 05, :mod:`amdd_kit.openset`)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import color_for

#: the colour of each group of clips in the open-set figures
GROUP_COLORS = {"known (test)": "#2ca02c", "unknown": "#d62728"}


def score_histograms(scores: pd.DataFrame, group: Sequence[str],
                     thresholds: Mapping[str, float], labels: Mapping[str, str] | None = None,
                     title: str = "Rejection scores: known and unknown clips") -> go.Figure:
    """One panel per score (the columns of ``scores`` ``[N, S]``), one histogram per group of
    clips (``group [N]``, e.g. "known (test)" / "unknown"), each normalised to a share of its
    group, with the score's threshold as a dashed line (right of it = rejected)."""
    names = list(scores.columns)
    cols = 2 if len(names) > 1 else 1
    rows = int(np.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols,
                        subplot_titles=[(labels or {}).get(n, n) for n in names])
    group = np.asarray(group)
    for i, name in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        for j, g in enumerate(dict.fromkeys(group.tolist())):
            fig.add_trace(go.Histogram(
                x=scores[name].to_numpy()[group == g], name=g, legendgroup=g, showlegend=i == 0,
                histnorm="probability", opacity=0.6, nbinsx=30,
                marker_color=GROUP_COLORS.get(g) or color_for(g, j)), row=r, col=c)
        if name in thresholds:
            fig.add_vline(x=float(thresholds[name]), line_dash="dash", line_color="black",
                          row=r, col=c)
    fig.update_layout(barmode="overlay", title=title + "<br><sup>dashed: each score's threshold, "
                      "set on validation clips of known generators; higher = more likely unknown"
                      "</sup>",
                      width=860, height=330 * rows)
    fig.update_yaxes(title_text="share of the group", col=1)
    return fig


def fold_bars(table: pd.DataFrame, metric: str = "auroc", chance: float | None = 0.5,
              recommended: str | None = None,
              title: str = "Leave one generator out: AUROC per held-out generator") -> go.Figure:
    """Grouped bars: one group per fold (``table.index``), one bar per score (the columns), the
    mean over the folds as the last group; a dashed line at ``chance`` (no skill)."""
    t = table.copy()
    t.loc["mean"] = t.mean()
    fig = go.Figure()
    for i, score in enumerate(t.columns):
        name = f"{score} (recommended)" if score == recommended else score
        fig.add_trace(go.Bar(x=list(t.index), y=t[score].to_numpy(), name=name,
                             marker_color=color_for(score, i + 2),
                             text=[f"{v:.2f}" if np.isfinite(v) else "n/a" for v in t[score]],
                             textposition="outside"))
    if chance is not None:
        fig.add_hline(y=chance, line_dash="dash", line_color="grey",
                      annotation_text="no skill")
    fig.update_layout(barmode="group", title=title, yaxis=dict(title=metric, range=[0, 1.1]),
                      width=900, height=420)
    return fig


def distance_boxes(distances: Mapping[str, np.ndarray], threshold: float,
                   half_gap: float | None = None,
                   title: str = "Distance to the nearest training centroid") -> go.Figure:
    """Box plots of the distance to the nearest centroid, one per group of clips, with the
    rejection threshold and, when given, half the distance between the two closest centroids
    (a clip beyond it is nearer no cluster than the clusters are to each other)."""
    fig = go.Figure()
    for i, (name, d) in enumerate(distances.items()):
        fig.add_trace(go.Box(y=np.asarray(d, dtype=float), name=name, boxpoints="all",
                             jitter=0.4, marker_color=GROUP_COLORS.get(name) or color_for(name, i)))
    fig.add_hline(y=float(threshold), line_dash="dash", line_color="black",
                  annotation_text="threshold")
    if half_gap is not None:
        fig.add_hline(y=float(half_gap), line_dash="dot", line_color="grey",
                      annotation_text="half the closest centroid gap",
                      annotation_position="bottom right")
    fig.update_layout(title=title, yaxis_title="|e/|e| - nearest centroid|", showlegend=False,
                      width=860, height=440)
    return fig

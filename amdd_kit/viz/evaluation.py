"""Evaluation figures: ROC curves, confusion matrix, recall bars, cross-dataset and landing bars."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn.metrics import roc_auc_score, roc_curve

from .common import METHOD_COLORS, color_for


def roc_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
               title: str = "ROC: real vs fake",
               xaxis_title: str = "false positive rate (reals called fake)",
               yaxis_title: str = "true positive rate (fakes caught)") -> go.Figure:
    """ROC curves, one per named set: ``{name: (labels 0/1 [N], p_fake [N])}`` (any score that
    is higher for label 1: the open-set figures pass ``(unknown, rejection score)``).

    A set with a single class has no ROC curve; it is listed in the title instead of crashing.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                             line=dict(dash="dash", color="grey")))
    skipped = []
    for i, (name, (y, s)) in enumerate(curves.items()):
        y, s = np.asarray(y), np.asarray(s, dtype=float)
        if len(np.unique(y)) < 2:
            skipped.append(name)
            continue
        fpr, tpr, _ = roc_curve(y, s)
        auc = roc_auc_score(y, s)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUC {auc:.3f})",
                                 line=dict(color=color_for(name, i))))
    if skipped:
        title += f"<br><sup>one class only, no curve: {', '.join(skipped)}</sup>"
    fig.update_layout(title=title, xaxis_title=xaxis_title,
                      yaxis_title=yaxis_title, width=560, height=480,
                      xaxis=dict(range=[0, 1]), yaxis=dict(range=[0, 1.02]))
    return fig


def confusion_figure(cm: pd.DataFrame, normalise: bool = True,
                     title: str = "Attribution confusion (rows: true, columns: predicted)"
                     ) -> go.Figure:
    """Heatmap of a confusion matrix (rows = true class, columns = predicted class).

    With ``normalise`` each row is divided by its total (rows then read as recall); the raw
    counts are shown in the hover text.
    """
    counts = cm.to_numpy(dtype=float)
    z = counts
    if normalise:
        z = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    text = [[f"{v:.2f}" if normalise else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in cm.columns], y=[str(r) for r in cm.index], text=text,
        texttemplate="%{text}", customdata=counts, colorscale="Blues", zmin=0,
        zmax=1 if normalise else None,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.2f}<br>n=%{customdata}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true",
                      yaxis=dict(autorange="reversed"), width=640, height=560)
    return fig


def recall_bars(per_method: Mapping[str, float] | pd.DataFrame,
                title: str = "Per-method recall (fakes caught / reals kept)") -> go.Figure:
    """Bars of recall per method.

    ``per_method`` is ``{method: recall}`` or a DataFrame with one column per set (grouped bars).
    """
    df = per_method if isinstance(per_method, pd.DataFrame) else \
        pd.DataFrame({"recall": pd.Series(dict(per_method), dtype=float)})
    fig = go.Figure()
    for i, col in enumerate(df.columns):
        colors = [color_for(str(m), j) for j, m in enumerate(df.index)] if len(df.columns) == 1 \
            else color_for(str(col), i + 7)
        fig.add_trace(go.Bar(x=[str(m) for m in df.index], y=df[col], name=str(col),
                             marker_color=colors, text=[f"{v:.2f}" for v in df[col]],
                             textposition="outside"))
    fig.update_layout(title=title, yaxis=dict(range=[0, 1.1], title="recall"),
                      barmode="group", showlegend=len(df.columns) > 1, width=720, height=420)
    return fig


def cross_dataset_figure(blocks: Mapping[str, Mapping[str, float]],
                         title: str = "Reals generalise, unseen generators do not"
                         ) -> go.Figure:
    """Grouped bars of real recall vs fake recall per dataset.

    ``blocks``: ``{dataset: {"real_recall": r, "fake_recall": f, ...}}`` (missing values -> gap).
    """
    names = list(blocks)

    def val(b, k):
        v = b.get(k)
        return np.nan if v is None else float(v)

    fig = go.Figure([
        go.Bar(x=names, y=[val(blocks[n], "real_recall") for n in names], name="real recall",
               marker_color=METHOD_COLORS["real"]),
        go.Bar(x=names, y=[val(blocks[n], "fake_recall") for n in names], name="fake recall",
               marker_color=METHOD_COLORS["faceswap"]),
    ])
    fig.update_layout(title=title, barmode="group", yaxis=dict(range=[0, 1.05], title="recall"),
                      width=640, height=420)
    return fig


def landing_figure(landing: Mapping[str, Mapping[str, float]],
                   title: str = "Where unseen fakes land in attribution") -> go.Figure:
    """Stacked horizontal bars: for each set, the share of its fakes given to each class.

    ``landing``: ``{set name: {predicted method: fraction}}``.
    """
    names = list(landing)
    classes: list[str] = []
    for d in landing.values():
        classes += [c for c in d if c not in classes]
    fig = go.Figure([go.Bar(y=names, x=[landing[n].get(c, 0.0) for n in names], name=c,
                            orientation="h", marker_color=color_for(c, i))
                     for i, c in enumerate(classes)])
    fig.update_layout(title=title, barmode="stack", xaxis=dict(range=[0, 1], title="fraction"),
                      width=720, height=120 + 50 * max(len(names), 1))
    return fig


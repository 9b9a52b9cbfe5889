"""Run-history figures: headline metrics across registered runs, per-method recall deltas."""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from ..registry import HEADLINE_METRICS


def trend_figure(registry: pd.DataFrame, metrics: Sequence[str] = HEADLINE_METRICS) -> go.Figure:
    """Plotly line chart: each headline metric over the registered runs (in order)."""
    fig = go.Figure()
    x = [f"{i}: {r}" for i, r in enumerate(registry["run_id"].astype(str))]
    for m in metrics:
        fig.add_trace(go.Scatter(x=x, y=registry[m], mode="lines+markers", name=m,
                                 text=registry["time"], hovertemplate="%{x}<br>%{text}<br>"
                                 + m + "=%{y:.3f}<extra></extra>"))
    fig.update_layout(title="Metrics across runs", yaxis=dict(title="fraction", range=[0, 1.02]),
                      xaxis_title="run (registry order)", height=420, template="plotly_white")
    return fig


def recall_delta_figure(table: pd.DataFrame) -> go.Figure:
    """Bar chart of per-method recall deltas from a :func:`amdd_kit.registry.compare_runs`
    table (red where the drop counts as a regression)."""
    per = table[table["kind"] == "per_method"] if not table.empty else table
    colors = ["#b91c1c" if r else "#2563eb" for r in per.get("regression", [])]
    fig = go.Figure(go.Bar(x=list(per.get("metric", [])), y=list(per.get("delta", [])),
                           marker_color=colors))
    fig.update_layout(title=f"Per-method recall: {table.attrs.get('current_run')} minus "
                            f"{table.attrs.get('base_run')}",
                      yaxis_title="recall delta", height=380, template="plotly_white")
    return fig

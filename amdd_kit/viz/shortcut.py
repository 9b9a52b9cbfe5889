"""Shortcut-audit figures: leading-silence lengths and the audit's balanced accuracies."""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import plotly.graph_objects as go

from .common import METHOD_COLORS, score_bars


def silence_figure(table: pd.DataFrame) -> go.Figure:
    """Box plots of the leading-silence length per corpus and label (``shortcut_silence.csv``)."""
    fig = go.Figure()
    for label, name, color in ((0, "real", METHOD_COLORS["real"]),
                               (1, "fake", METHOD_COLORS["faceswap"])):
        t = table[table["label"] == label]
        fig.add_trace(go.Box(x=t["corpus"], y=t["leading_silence_s"], name=name,
                             marker_color=color, boxpoints="all", jitter=0.4))
    fig.update_layout(boxmode="group", title="Leading silence before the first sound",
                      yaxis_title="seconds", width=640, height=420)
    return fig


def audit_bars(scores: Mapping[str, float]) -> go.Figure:
    """Balanced accuracy per setting of the audit (``shortcut.audit_scores``): the silence
    detector's settings (their names start with "silence detector") in grey, AMDD's in blue."""
    colors = ["#7f7f7f" if k.startswith("silence detector") else "#1f77b4" for k in scores]
    return score_bars(dict(scores), colors, "The shortcut audit: balanced accuracy",
                      chance=0.5, digits=2, width=760, height=420)

"""Ablation figures: one metric across the ablation rows."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from .common import score_bars

METRIC_LABELS: dict[str, str] = {
    "balanced_accuracy": "balanced accuracy (detection)",
    "auc": "ROC AUC (detection)",
    "attribution_accuracy": "attribution accuracy (head; probe where the head was untrained)",
    "probe_accuracy": "linear-probe attribution accuracy (shared embedding)",
    "silhouette": "silhouette of the generator clusters (cosine)",
    "trace_probe_visual": "visual fingerprint -> visual trace (linear probe)",
    "trace_probe_audio": "audio fingerprint -> audio trace (linear probe)",
    "fake_recall_heldout": "fake recall on held-out generators (mean over sets)",
}


def metric_figure(table: pd.DataFrame, metric: str) -> go.Figure:
    """Bar chart of one metric across the ablation rows (failed rows show as gaps).

    Reference lines: what a model without the skill gets (0.5 for detection, always naming the
    most frequent class for attribution).
    """
    vals = pd.to_numeric(table[metric], errors="coerce") if metric in table.columns \
        else pd.Series(float("nan"), index=table.index)
    colors = ["#d62728" if r == "cad" else "#1f77b4" if r == "full" else "#7f7f7f"
              for r in table.index]
    majority = float(pd.to_numeric(table.get("attribution_majority"), errors="coerce").max()) \
        if "attribution_majority" in table.columns else float("nan")
    chance = {"balanced_accuracy": 0.5, "auc": 0.5}.get(metric)
    if metric in ("attribution_accuracy", "probe_accuracy") and math.isfinite(majority):
        chance = majority
    label = "" if chance is None else \
        f"{'chance' if chance == 0.5 else 'majority class'} {chance:.2f}"
    return score_bars(dict(zip(map(str, table.index), vals)), colors,
                      METRIC_LABELS.get(metric, metric), chance=chance, chance_label=label,
                      y_min=-1.05 if metric == "silhouette" else 0)

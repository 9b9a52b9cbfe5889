"""Plotly figure builders of the kit, and offline saving.

Every builder takes plain arrays / DataFrames and returns a ``plotly.graph_objects.Figure``;
nothing here trains or loads a model. One module per subject:

============  ==================================================================================
common        class colours, :func:`setup_offline`, :func:`save_figure`, :func:`score_bars`
evaluation    ROC, confusion matrix, recall bars, cross-dataset and landing bars (notebook 04)
embedding     2-D maps, panels side by side, distance heatmaps, alignment boxes (notebook 05)
clips         the clip figure: frames (with Grad-CAM) above the log-mel (notebooks 01, 03, 04)
ablation      one metric across the ablation rows (notebook 06)
shortcut      the leading-silence audit (notebook 06)
runs          metric trends and recall deltas across registered runs (notebook 07)
openset       rejection-score histograms, AUROC per held-out generator, centroid distances (05)
============  ==================================================================================

Figures are saved as standalone HTML with plotly.js embedded (:func:`save_figure`), so they open
without network access; :func:`setup_offline` makes notebooks display figures the same way.
"""
from __future__ import annotations

from .ablation import METRIC_LABELS, metric_figure
from .clips import color_map, frames_mel_figure, overlay_heatmap
from .common import METHOD_COLORS, color_for, ordered, save_figure, score_bars, setup_offline
from .embedding import (alignment_figure, distance_heatmap, embedding_panels, is_continuous,
                        scatter_2d, side_by_side, timeline_figure)
from .evaluation import (confusion_figure, cross_dataset_figure, landing_figure, recall_bars,
                         roc_figure)
from .openset import distance_boxes, fold_bars, score_histograms
from .runs import recall_delta_figure, trend_figure
from .shortcut import audit_bars, silence_figure

__all__ = [
    "METHOD_COLORS", "setup_offline", "save_figure", "color_for", "ordered", "score_bars",
    "roc_figure", "confusion_figure", "recall_bars", "cross_dataset_figure", "landing_figure",
    "scatter_2d", "side_by_side", "timeline_figure", "is_continuous",
    "embedding_panels", "distance_heatmap", "alignment_figure",
    "frames_mel_figure", "overlay_heatmap", "color_map",
    "METRIC_LABELS", "metric_figure", "silence_figure", "audit_bars",
    "trend_figure", "recall_delta_figure",
    "score_histograms", "fold_bars", "distance_boxes",
]

"""Plotly figure builders used by the notebooks, and offline saving.

Every builder takes plain arrays / DataFrames and returns a ``plotly.graph_objects.Figure``;
nothing here trains or loads a model. Figures are saved as standalone HTML with plotly.js
embedded (:func:`save_figure`), so they open without network access; :func:`setup_offline`
makes notebooks display figures the same way.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

log = logging.getLogger(__name__)

#: One fixed colour per attribution class so every figure of the series uses the same colours.
METHOD_COLORS: dict[str, str] = {
    "real": "#2ca02c", "rtvc": "#9467bd", "faceswap": "#d62728", "fsgan": "#ff7f0e",
    "wav2lip": "#1f77b4", "faceswap-wav2lip": "#e377c2", "fsgan-wav2lip": "#8c564b",
}

__all__ = [
    "METHOD_COLORS", "setup_offline", "save_figure", "roc_figure", "confusion_figure",
    "recall_bars", "cross_dataset_figure", "landing_figure", "scatter_2d", "side_by_side",
    "distance_heatmap",
    "alignment_figure", "frames_mel_figure", "overlay_heatmap", "color_map",
]


# -- offline display and saving -----------------------------------------------------------------
def setup_offline(renderer: str = "plotly_mimetype") -> str:
    """Make notebook figures work without a CDN; returns the renderer name now in use.

    ``plotly_mimetype`` (the default) stores each figure as its JSON
    (``application/vnd.plotly.v1+json``) and lets the front end draw it with its own plotly.js:
    JupyterLab's bundled plotly extension, VS Code, or :func:`amdd_kit.report.export_html`,
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


def _color(name: str, i: int) -> str:
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    palette = ("#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
               "#c5b0d5", "#c49c94", "#f7b6d2")
    return palette[i % len(palette)]


# -- evaluation figures -------------------------------------------------------------------------
def roc_figure(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
               title: str = "ROC: real vs fake") -> go.Figure:
    """ROC curves, one per named set: ``{name: (labels 0/1 [N], p_fake [N])}``.

    A set with a single class has no ROC curve; it is listed in the title instead of crashing.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

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
                                 line=dict(color=_color(name, i))))
    if skipped:
        title += f"<br><sup>one class only, no curve: {', '.join(skipped)}</sup>"
    fig.update_layout(title=title, xaxis_title="false positive rate (reals called fake)",
                      yaxis_title="true positive rate (fakes caught)", width=560, height=480,
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
        colors = [_color(str(m), j) for j, m in enumerate(df.index)] if len(df.columns) == 1 \
            else _color(str(col), i + 7)
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
                            orientation="h", marker_color=_color(c, i))
                     for i, c in enumerate(classes)])
    fig.update_layout(title=title, barmode="stack", xaxis=dict(range=[0, 1], title="fraction"),
                      width=720, height=120 + 50 * max(len(names), 1))
    return fig


# -- embedding figures --------------------------------------------------------------------------
def scatter_2d(df: pd.DataFrame, xy: np.ndarray, color: str = "method",
               hover: Sequence[str] = ("clip_id", "video_id", "method", "identity"),
               title: str = "", marker_size: int = 7, width: int = 700,
               height: int = 560) -> go.Figure:
    """A 2-D map (e.g. UMAP) of the rows of ``df``, one trace per value of ``df[color]``.

    ``xy``: ``[N, 2]`` coordinates aligned with ``df``'s rows. The row position is kept in each
    point's ``customdata[0]`` so a click can find the clip again.
    """
    xy = np.asarray(xy)
    if len(xy) != len(df):
        raise ValueError(f"{len(xy)} coordinates for {len(df)} rows")
    hover = [h for h in hover if h in df.columns and h != color]
    values = df[color].astype(str).to_numpy()
    fig = go.Figure()
    for i, v in enumerate(_ordered(values)):
        rows = np.flatnonzero(values == v)
        custom = np.column_stack([rows] + [df[h].astype(str).to_numpy()[rows] for h in hover])
        tmpl = "<br>".join([f"{color}: {v}"] + [f"{h}: %{{customdata[{j + 1}]}}"
                                                 for j, h in enumerate(hover)])
        fig.add_trace(go.Scatter(x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=v,
                                 marker=dict(size=marker_size, color=_color(v, i), opacity=0.8),
                                 customdata=custom, hovertemplate=tmpl + "<extra></extra>"))
    fig.update_layout(title=title, width=width, height=height, legend_title=color,
                      xaxis=dict(showticklabels=False, title=""),
                      yaxis=dict(showticklabels=False, title=""))
    return fig


def _ordered(values: np.ndarray) -> list[str]:
    """Unique values, attribution classes first in their label order, then the rest sorted."""
    uniq = set(values.tolist())
    return [m for m in METHOD_COLORS if m in uniq] + sorted(uniq - set(METHOD_COLORS))


_AXIS_KEYS = ("showticklabels", "autorange", "title", "tickangle", "scaleanchor", "constrain")


def side_by_side(figs: Sequence[go.Figure], titles: Sequence[str], title: str = "",
                 width_each: int = 560, height: int = 520) -> go.Figure:
    """Put the traces of several single-panel figures next to each other (one row).

    Traces with the same name share one legend entry (shown once), so maps coloured by the
    same column read together; unnamed traces (heatmaps) get no legend entry. Each panel keeps
    its source figure's axis settings (tick labels, reversed y of a heatmap), so class names
    stay on heatmap axes, and each heatmap's colour bar sits beside its own panel.
    """
    n = len(figs)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles),
                        horizontal_spacing=0.12 if any(
                            t.type == "heatmap" for f in figs for t in f.data) else 0.04)
    seen: set[str] = set()
    for c, f in enumerate(figs, start=1):
        xdom = fig.get_subplot(1, c).xaxis.domain
        for t in f.data:
            t = go.Figure(t).data[0]                     # a copy, so ``f`` is left untouched
            if t.type == "heatmap":
                t.showlegend = False
                t.colorbar = dict(x=xdom[1] + 0.01, len=0.9, thickness=12)
            else:
                t.legendgroup = t.name
                t.showlegend = bool(t.name) and t.name not in seen
                if t.name:
                    seen.add(t.name)
            fig.add_trace(t, row=1, col=c)
        for ax, src in (("xaxis", f.layout.xaxis), ("yaxis", f.layout.yaxis)):
            props = {k: src[k] for k in _AXIS_KEYS if src[k] is not None and k != "scaleanchor"}
            (fig.update_xaxes if ax == "xaxis" else fig.update_yaxes)(row=1, col=c, **props)
    fig.update_layout(title=title, width=width_each * n, height=height,
                      showlegend=bool(seen), margin=dict(b=90))
    return fig


def distance_heatmap(D: pd.DataFrame, title: str = "Centroid distances") -> go.Figure:
    """Heatmap of a square class-distance matrix (e.g. from ``geometry.centroid_distances``)."""
    fig = go.Figure(go.Heatmap(z=D.to_numpy(), x=[str(c) for c in D.columns],
                               y=[str(r) for r in D.index], colorscale="Viridis",
                               text=[[f"{v:.2f}" for v in row] for row in D.to_numpy()],
                               texttemplate="%{text}",
                               hovertemplate="%{y} - %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis=dict(showticklabels=True, tickangle=-40),
                      yaxis=dict(autorange="reversed", showticklabels=True), width=600, height=540)
    return fig


def alignment_figure(values: pd.DataFrame, by: str = "method", value: str = "alignment",
                     kind: str = "box",
                     title: str = "Per-clip cos(f_v, f_a): visual vs audio fingerprint"
                     ) -> go.Figure:
    """Box (or violin) plot of a per-clip value grouped by class (one box per class)."""
    if kind not in ("box", "violin"):
        raise ValueError(f"kind must be 'box' or 'violin', got {kind!r}")
    groups = values[by].astype(str).to_numpy()
    fig = go.Figure()
    for i, g in enumerate(_ordered(groups)):
        y = values.loc[groups == g, value].to_numpy()
        trace = go.Box(y=y, name=g, boxpoints="all", jitter=0.4, pointpos=0) if kind == "box" \
            else go.Violin(y=y, name=g, box_visible=True, points="all")
        trace.marker.color = _color(g, i)
        fig.add_trace(trace)
    fig.update_layout(title=title, yaxis=dict(title=value, range=[-1.05, 1.05]),
                      showlegend=False, width=720, height=440)
    return fig


# -- clips --------------------------------------------------------------------------------------
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=float)


def color_map(x: np.ndarray) -> np.ndarray:
    """Map values in 0..1 ``[...]`` to RGB uint8 ``[..., 3]`` (an inferno-like colour scale)."""
    x = np.clip(np.nan_to_num(np.asarray(x, dtype=float)), 0, 1) * (len(_ANCHORS) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (x - lo)[..., None]
    return ((1 - t) * _ANCHORS[lo] + t * _ANCHORS[lo + 1]).round().astype(np.uint8)


def overlay_heatmap(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a 0..1 heatmap ``[H, W]`` over an RGB frame (``[3,H,W]`` or ``[H,W,3]`` uint8).

    Returns ``[H, W, 3]`` uint8. The frame is put in channels-last order if needed.
    """
    img = _hwc(frame).astype(float)
    if heat.shape != img.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} does not match frame {img.shape[:2]}")
    a = alpha * np.clip(heat, 0, 1)[..., None]      # transparent where the map is cold
    return ((1 - a) * img + a * color_map(heat)).round().clip(0, 255).astype(np.uint8)


def _hwc(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ValueError(f"a frame must be [3,H,W] or [H,W,3], got {frame.shape}")
    return frame.transpose(1, 2, 0) if frame.shape[0] == 3 and frame.shape[-1] != 3 else frame


def frames_mel_figure(frames: np.ndarray, mel: np.ndarray, title: str = "",
                      heat: np.ndarray | None = None, mel_heat: np.ndarray | None = None,
                      max_frames: int = 8, width: int | None = None,
                      mel_height: int = 150) -> go.Figure:
    """One clip: its face frames in one row (true aspect), its log-mel spectrogram below.

    ``frames`` uint8 ``[T,3,H,W]``; ``mel`` ``[n_mels,S]``. At most ``max_frames`` frames are
    shown (evenly strided). Optional ``heat`` ``[T,H,W]`` (0..1, e.g. Grad-CAM) is blended over
    the frames, and ``mel_heat`` ``[n_mels,S]`` (0..1, e.g. occlusion saliency) is drawn as a
    second spectrogram panel below the mel. The figure height is computed from ``width`` so
    the frame row has the frames' own aspect ratio (no letterboxing, no stretching).
    """
    frames = np.asarray(frames)
    T = frames.shape[0]
    step = max(1, int(np.ceil(T / max_frames)))
    shown = list(range(0, T, step))
    n_cols = len(shown)
    n_rows = 3 if mel_heat is not None else 2          # frames / mel / (saliency)
    h_img, w_img = _hwc(frames[0]).shape[:2]
    width = width or max(90 * n_cols + 40, 560)
    margin = dict(l=20, r=20, t=60 if title else 20, b=30)
    hspace, gap = 0.01, 30
    col_px = (width - margin["l"] - margin["r"]) * (1 - hspace * (n_cols - 1)) / n_cols
    frame_px = col_px * h_img / w_img
    plot_h = frame_px + (mel_height + gap) * (n_rows - 1)
    specs = [[{} for _ in range(n_cols)]] + \
        [[{"colspan": n_cols}] + [None] * (n_cols - 1) for _ in range(n_rows - 1)]
    fig = make_subplots(rows=n_rows, cols=n_cols, specs=specs,
                        row_heights=[frame_px] + [mel_height] * (n_rows - 1),
                        vertical_spacing=gap / plot_h, horizontal_spacing=hspace)
    for c, t in enumerate(shown, start=1):
        img = overlay_heatmap(frames[t], heat[t]) if heat is not None else _hwc(frames[t])
        fig.add_trace(go.Image(z=img, name=f"frame {t}",
                               hovertemplate=f"frame {t}<extra></extra>"), row=1, col=c)
        fig.update_xaxes(showticklabels=False, row=1, col=c)
        fig.update_yaxes(showticklabels=False, row=1, col=c)
    mel = np.asarray(mel, dtype=np.float32)
    fig.add_trace(go.Heatmap(z=mel, colorscale="Magma", showscale=False, name="log-mel",
                             hovertemplate="mel bin %{y}<br>column %{x}<br>%{z:.2f}"
                                           "<extra>log-mel</extra>"),
                  row=2, col=1)
    fig.update_yaxes(title_text="mel bin", row=2, col=1)
    if mel_heat is not None:
        fig.add_trace(go.Heatmap(z=np.asarray(mel_heat, dtype=np.float32), colorscale="Inferno",
                                 zmin=0, zmax=1, showscale=False, name="saliency",
                                 hovertemplate="mel bin %{y}<br>column %{x}<br>%{z:.2f}"
                                               "<extra>saliency</extra>"),
                      row=3, col=1)
    fig.update_layout(title=title, width=width, showlegend=False, margin=margin,
                      height=int(round(plot_h + margin["t"] + margin["b"])))
    return fig

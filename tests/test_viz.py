"""Figure builders, offline saving and the embedding explorer (driven from code)."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from amdd_kit import viz
from amdd_kit import widgets as Wd


def embeddings_table(n=24, d=6, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    methods = np.array(["real", "rtvc", "fsgan", "wav2lip"])[np.arange(n) % 4]
    pred = methods.copy()
    pred[::5] = "real"
    return pd.DataFrame({
        "clip_id": np.arange(100, 100 + n), "video_id": [f"v{i // 2}" for i in range(n)],
        "identity": [f"id{i % 3}" for i in range(n)], "method": methods,
        "category": np.where(methods == "real", "RVRA", "FVFA"),
        "label": (methods != "real").astype(int), "pred_method": pred,
        "pred_label": (pred != "real").astype(int), "p_fake": rng.random(n),
        "embedding": list(rng.normal(size=(n, d)).astype(np.float32)),
        "f_v": list(rng.normal(size=(n, d)).astype(np.float32)),
        "f_a": list(rng.normal(size=(n, d)).astype(np.float32)),
    })


def test_save_figure_writes_offline_html_and_creates_folders(tmp_path):
    fig = viz.recall_bars({"real": 0.9, "fsgan": 0.5})
    out = viz.save_figure(fig, tmp_path / "a" / "b" / "fig.html")
    text = out.read_text()
    # plotly.js written once beside the figures and loaded by a relative path: no network
    lib = out.parent / "plotly.min.js"
    assert lib.exists() and lib.stat().st_size > 1_000_000
    assert 'src="plotly.min.js"' in text and "cdn.plot.ly" not in text
    solo = viz.save_figure(fig, tmp_path / "solo.html", standalone=True)
    assert len(solo.read_text()) > 1_000_000                # plotly.js embedded in the file
    assert not (tmp_path / "plotly.min.js").exists()
    # figures travel as JSON and are drawn by the front end's plotly.js: no 4.9 MB per notebook
    assert viz.setup_offline() == "plotly_mimetype"
    assert pio.renderers.default == "plotly_mimetype"


def test_roc_and_confusion_and_recall_figures_hold_the_numbers():
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    fig = viz.roc_figure({"test": (y, s), "dfdm": (np.ones(4), np.random.rand(4))})
    names = [t.name for t in fig.data]
    assert names[0] == "chance" and names[1].startswith("test (AUC 0.833)")
    assert len(fig.data) == 2 and "dfdm" in fig.layout.title.text     # one-class set skipped
    cm = pd.DataFrame([[3, 1], [0, 4]], index=["real", "rtvc"], columns=["real", "rtvc"])
    z = np.asarray(viz.confusion_figure(cm).data[0].z)
    assert np.allclose(z, [[0.75, 0.25], [0, 1]])
    bars = viz.recall_bars(pd.DataFrame({"a": [0.5, 1.0], "b": [0.2, 0.3]}, index=["x", "y"]))
    assert len(bars.data) == 2 and list(bars.data[1].y) == [0.2, 0.3]
    cross = viz.cross_dataset_figure({"lavdf": {"real_recall": 0.9, "fake_recall": 0.1},
                                      "dfdm": {"real_recall": None, "fake_recall": 0.3}})
    assert list(cross.data[1].y) == [0.1, 0.3] and np.isnan(cross.data[0].y[1])
    land = viz.landing_figure({"lavdf": {"real": 0.7, "fsgan": 0.3}})
    assert [t.name for t in land.data] == ["real", "fsgan"]


def test_scatter_keeps_row_numbers_and_colours_by_column():
    df = embeddings_table()
    xy = np.random.default_rng(0).normal(size=(len(df), 2))
    fig = viz.scatter_2d(df, xy, color="method")
    assert [t.name for t in fig.data] == ["real", "rtvc", "fsgan", "wav2lip"]  # label order
    rows = np.concatenate([np.asarray(t.customdata)[:, 0].astype(int) for t in fig.data])
    assert sorted(rows) == list(range(len(df)))
    t = fig.data[2]
    r = int(t.customdata[0][0])
    assert df.method[r] == "fsgan" and t.x[0] == pytest.approx(xy[r, 0])
    with pytest.raises(ValueError):
        viz.scatter_2d(df, xy[:3])


def test_overlay_and_frames_mel_figure():
    frame = np.full((3, 8, 8), 100, np.uint8)
    heat = np.zeros((8, 8))
    heat[:4, :4] = 1
    out = viz.overlay_heatmap(frame, heat, alpha=0.5)
    assert out.shape == (8, 8, 3)
    assert (out[4:, 4:] == 100).all() and (out[:4, :4] != 100).any()
    with pytest.raises(ValueError):
        viz.overlay_heatmap(frame, np.zeros((4, 4)))
    fig = viz.frames_mel_figure(np.zeros((16, 3, 8, 8), np.uint8), np.zeros((10, 20)),
                                max_frames=8)
    assert [t.type for t in fig.data].count("image") == 8
    one = viz.frames_mel_figure(np.zeros((1, 3, 8, 8), np.uint8), np.zeros((10, 20)),
                                mel_heat=np.ones((10, 20)))
    assert [t.type for t in one.data] == ["image", "heatmap", "heatmap"]


def test_distance_and_alignment_figures():
    D = pd.DataFrame([[0, 0.3], [0.3, 0]], index=["a", "b"], columns=["a", "b"])
    assert np.allclose(viz.distance_heatmap(D).data[0].z, D.values)
    vals = pd.DataFrame({"method": ["real", "real", "fsgan"], "alignment": [0.9, 0.8, 0.1]})
    fig = viz.alignment_figure(vals, kind="violin")
    assert [t.name for t in fig.data] == ["real", "fsgan"] and fig.data[0].type == "violin"
    with pytest.raises(ValueError):
        viz.alignment_figure(vals, kind="pie")


class FakeStore:
    def __init__(self, df):
        n = len(df) + 2
        self.manifest = pd.DataFrame({"clip_id": np.arange(98, 98 + n)})
        self.frames = np.random.default_rng(0).integers(0, 255, (n, 4, 3, 8, 8), dtype=np.uint8)
        self.mels = np.zeros((n, 10, 20), np.float16)


def test_explorer_redraws_when_dropdowns_are_set_in_code_and_shows_clicked_clip(monkeypatch):
    df = embeddings_table()
    rng = np.random.default_rng(1)
    calls = []

    def fake_umap(X, seed=0, n_neighbors=15):
        calls.append(X.shape)
        return rng.normal(size=(len(X), 2)).astype(np.float32)

    monkeypatch.setattr(Wd.geometry, "umap_2d", fake_umap)
    ex = Wd.EmbeddingExplorer(df, store=FakeStore(df), coords={"shared": rng.normal(size=(24, 2))})
    assert calls == []                                      # precomputed map reused
    assert [t.name for t in ex.visible_traces()] == ["real", "rtvc", "fsgan", "wav2lip"]
    n_traces, n_detail = len(ex.fig.data), len(ex.detail.data)
    x_before = np.concatenate([t.x for t in ex.fig.data])

    ex.space.value = "audio"                                # as if picked in the dropdown
    assert calls == [(24, 6)]
    x_after = np.concatenate([t.x for t in ex.fig.data])
    assert not np.allclose(np.sort(x_before), np.sort(x_after))
    assert "audio" in ex.fig.layout.title.text

    ex.color.value = "correctness"
    assert sorted(t.name for t in ex.visible_traces()) == ["correct", "wrong"]
    assert len(ex.fig.data) == n_traces                     # restyled in place, not refilled
    assert [t.showlegend for t in ex.fig.data if t.visible is False] == [False] * (n_traces - 2)
    wrong = [t for t in ex.fig.data if t.name == "wrong"][0]
    assert len(wrong.x) == int((df.pred_method != df.method).sum())
    ex.space.value = "shared"
    ex.space.value = "audio"
    assert len(calls) == 1                                  # cached

    # a click on the 2nd point of the "wrong" trace
    ex._on_click(wrong, types.SimpleNamespace(point_inds=[1]), None)
    row = int(wrong.customdata[1][0])
    assert ex.selected == row
    assert str(df.clip_id[row]) in ex.info.value
    kinds = [t.type for t in ex.detail.data]
    assert kinds.count("image") == 4 and "heatmap" in kinds
    assert len(ex.detail.data) == n_detail
    assert str(df.clip_id[row]) in ex.detail.layout.title.text
    store_row = int(np.flatnonzero(ex.store.manifest.clip_id == df.clip_id[row])[0])
    assert np.array_equal(ex.detail.data[2].z, ex.store.frames[store_row, 2].transpose(1, 2, 0))
    ex._on_click(wrong, types.SimpleNamespace(point_inds=[]), None)   # empty click: no change
    assert ex.selected == row

    static = ex.static_figure()
    assert len(static.data) == len(ex.visible_traces()) and type(static).__name__ == "Figure"
    with pytest.raises(IndexError):
        ex.select(999)


def test_explorer_without_store_or_vectors():
    df = embeddings_table()
    ex = Wd.EmbeddingExplorer(df.drop(columns=["f_v", "f_a"]),
                              coords={"shared": np.zeros((24, 2))})
    assert ex.space.options == ("shared",)
    ex.select(0)
    assert "no store" in ex.detail.layout.title.text
    with pytest.raises(ValueError):
        Wd.EmbeddingExplorer(df.iloc[0:0])


def test_side_by_side_shares_the_legend():
    df = embeddings_table()
    rng = np.random.default_rng(0)
    a = viz.scatter_2d(df, rng.normal(size=(24, 2)))
    b = viz.scatter_2d(df, rng.normal(size=(24, 2)))
    fig = viz.side_by_side([a, b], ["visual", "audio"])
    assert len(fig.data) == 8
    assert [t.showlegend for t in fig.data] == [True] * 4 + [False] * 4
    assert {t.xaxis for t in fig.data} == {"x", "x2"}
    assert a.data[0].showlegend is None                    # the inputs are not modified
    assert fig.layout.width >= 1000                        # two maps of a readable size


def test_side_by_side_heatmaps_keep_class_names_and_no_stray_legend():
    D = pd.DataFrame([[0, 0.3], [0.3, 0]], index=["real", "fsgan"], columns=["real", "fsgan"])
    fig = viz.side_by_side([viz.distance_heatmap(D), viz.distance_heatmap(2 * D)], ["a", "b"])
    assert [t.showlegend for t in fig.data] == [False, False]   # no "trace 0" entries
    assert fig.layout.showlegend is False
    for ax in (fig.layout.xaxis, fig.layout.xaxis2, fig.layout.yaxis, fig.layout.yaxis2):
        assert ax.showticklabels is not False
    assert fig.layout.yaxis.autorange == "reversed" == fig.layout.yaxis2.autorange
    assert list(fig.data[0].x) == ["real", "fsgan"]
    bars = [t.colorbar.x for t in fig.data]                 # each colour bar by its own panel
    assert bars[0] < fig.layout.xaxis2.domain[0] < bars[1]


def test_frames_mel_figure_keeps_the_frame_aspect():
    fig = viz.frames_mel_figure(np.zeros((8, 3, 48, 64), np.uint8), np.zeros((64, 40)),
                                width=800, max_frames=8)
    L = fig.layout
    plot_w = L.width - L.margin.l - L.margin.r
    plot_h = L.height - L.margin.t - L.margin.b
    dx, dy = L.xaxis.domain, L.yaxis.domain
    frame_w, frame_h = (dx[1] - dx[0]) * plot_w, (dy[1] - dy[0]) * plot_h
    assert frame_h / frame_w == pytest.approx(48 / 64, rel=0.02)
    assert L.yaxis.domain[0] > L.yaxis9.domain[1]          # one row of frames, mel below
    assert {L[f"yaxis{i}"].domain for i in range(2, 9)} == {L.yaxis.domain}


def test_live_explorer_widgets_carry_their_content_and_keep_their_layout():
    df = embeddings_table()
    rng = np.random.default_rng(0)
    coords = {s: rng.normal(size=(24, 2)) for s in ("shared", "visual", "audio")}
    ex = Wd.EmbeddingExplorer(df, store=FakeStore(df), coords=coords)
    assert type(ex.fig).__name__ == "FigureWidget"
    # what a newly connected browser receives: the traces, not an empty figure
    assert len(ex.fig._data) == ex.n_traces and len(ex.fig._data[0]["x"]) > 0
    assert len(ex.detail._data) == 5                       # 4 placeholder frames + the mel
    assert "Click a point" in ex.detail.layout.title.text
    domains = [ex.detail.layout[f"xaxis{i if i > 1 else ''}"].domain for i in range(1, 6)]
    ex.space.value = "visual"
    ex.select(5)
    ex.color.value = "identity"
    ex.select(7)
    assert domains == [ex.detail.layout[f"xaxis{i if i > 1 else ''}"].domain
                       for i in range(1, 6)]
    assert len(ex.fig.data) == ex.n_traces and len(ex.detail.data) == 5
    assert sorted(t.name for t in ex.visible_traces()) == ["id0", "id1", "id2"]


def test_explorer_without_live_widgets_still_follows_the_dropdowns():
    df = embeddings_table()
    rng = np.random.default_rng(0)
    coords = {s: rng.normal(size=(24, 2)) for s in ("shared", "visual", "audio")}
    ex = Wd.EmbeddingExplorer(df, store=FakeStore(df), coords=coords, live=False)
    assert type(ex.fig).__name__ == "Figure"
    ex.space.value = "visual"
    assert np.allclose(np.sort(np.concatenate([t.x for t in ex.visible_traces()])),
                       np.sort(coords["visual"][:, 0]))
    ex.select(3)
    assert [t.type for t in ex.detail.data].count("image") == 4


def test_live_explorer_reconnect_state_is_the_current_picture():
    """A page that (re)connects draws ``get_state()``: it must be the current map and clip."""
    df = embeddings_table()
    rng = np.random.default_rng(0)
    coords = {s: rng.normal(size=(24, 2)) for s in ("shared", "visual", "audio")}
    ex = Wd.EmbeddingExplorer(df, store=FakeStore(df), coords=coords)
    ex.color.value = "correctness"
    ex.space.value = "audio"
    ex.select(4)
    data, layout = ex.fig.get_state()["_widget_data"], ex.fig.get_state()["_widget_layout"]
    assert len(data) == ex.n_traces
    assert sorted(d["name"] for d in data if d.get("visible") is not False) == ["correct", "wrong"]
    assert "audio" in layout["title"]["text"]
    clip = ex.detail.get_state()
    assert str(df.clip_id[4]) in clip["_widget_layout"]["title"]["text"]
    assert sum(d["type"] == "image" for d in clip["_widget_data"]) == 4

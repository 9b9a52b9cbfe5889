"""Figure builders, offline saving and the embedding explorer (driven from code)."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from amdd_kit import geometry, viz
from amdd_kit.config import METHODS
from amdd_kit.ui import explorer as Wd


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
        return geometry.Map2D(rng.normal(size=(len(X), 2)).astype(np.float32), X)

    monkeypatch.setattr(geometry, "umap_map", fake_umap)
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
    # one trace per colour value of the most varied colouring, and the video's (hidden)
    assert len(ex.fig._data) == ex.n_traces + 1 and len(ex.fig._data[0]["x"]) > 0
    assert len(ex.detail._data) == 5                       # 4 placeholder frames + the mel
    assert "Click a point" in ex.detail.layout.title.text
    domains = [ex.detail.layout[f"xaxis{i if i > 1 else ''}"].domain for i in range(1, 6)]
    ex.space.value = "visual"
    ex.select(5)
    ex.color.value = "identity"
    ex.select(7)
    assert domains == [ex.detail.layout[f"xaxis{i if i > 1 else ''}"].domain
                       for i in range(1, 6)]
    assert len(ex.fig.data) == ex.n_traces + 1 and len(ex.detail.data) == 5
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
    assert len(data) == ex.n_traces + 1
    assert sorted(d["name"] for d in data if d.get("visible") is not False) == ["correct", "wrong"]
    assert "audio" in layout["title"]["text"]
    # the clip view is a plain figure in an Output: its state is that figure's plotly JSON alone
    (out,) = ex._detail_out.get_state()["outputs"]
    clip = out["data"]["application/vnd.plotly.v1+json"]
    assert str(df.clip_id[4]) in clip["layout"]["title"]["text"]
    assert sum(d["type"] == "image" for d in clip["data"]) == 4


# -- every colouring, the placeholder, a student's own video -----------------------------------
def _record_updates(fig):
    """Collect the restyle part of every update message a FigureWidget sends its browser."""
    sent = []
    orig = fig._send_update_msg

    def spy(restyle_data, relayout_data, trace_indexes=None, **kw):
        sent.append(dict(restyle_data or {}))
        return orig(restyle_data, relayout_data, trace_indexes, **kw)

    fig._send_update_msg = spy
    return sent


def test_explorer_every_colouring_in_both_directions_restyles_cleanly():
    """plotly.js refuses an update that sets ``marker`` on some traces and ``marker.color`` on
    others ("cannot set marker.color and a parent attribute simultaneously"): the map kept its
    old legend whenever a colouring with fewer groups followed one with more."""
    df = embeddings_table()
    rng = np.random.default_rng(0)
    ex = Wd.EmbeddingExplorer(df, store=FakeStore(df), coords={"shared": rng.normal(size=(24, 2))})
    options = list(ex.color.options)
    sent = _record_updates(ex.fig)
    groups = {c: ex.df[c].nunique() for c in options if c != "p_fake"}
    most, fewest = max(groups, key=groups.get), min(groups, key=groups.get)
    scales = [c for c in options if c == "p_fake"]
    for a in (most, fewest, *scales):             # each colouring after many, few, a scale
        for b in options:
            if a == b:
                continue
            ex.color.value = a
            sent.clear()
            ex.color.value = b
            keys = {k for msg in sent for k in msg}
            clash = sorted(k for k in keys if any(o.startswith(k + ".") for o in keys))
            assert not clash, (a, b, clash)
            shown = ex.visible_traces()
            assert sum(len(t.x) for t in shown) == len(df), (a, b)
            assert ex.fig.layout.legend.title.text == b and b in ex.fig.layout.title.text
            if b == "p_fake":                               # one trace on a colour scale
                (t,) = shown
                assert t.marker.showscale is True and not t.showlegend
                assert np.allclose(t.marker.color, df.p_fake.to_numpy()[t.customdata[:, 0]
                                                                      .astype(int)])
                assert (t.marker.cmin, t.marker.cmax) == (0.0, 1.0)
            else:
                assert sorted(t.name for t in shown) == sorted(ex.df[b].astype(str).unique()), \
                    (a, b)
                assert not any(t.marker.showscale for t in ex.fig.data), (a, b)
    assert options[-1] == "p_fake" and {"method", "category", "identity"} <= set(options)


def test_explorer_placeholder_does_not_read_as_data():
    """Before any click the clip view showed grey squares over a solid magenta bar (an empty
    log-mel drawn in the colour scale): now blank frames, a transparent mel and a note."""
    df = embeddings_table()
    ex = Wd.EmbeddingExplorer(df, store=FakeStore(df),
                              coords={"shared": np.random.default_rng(0).normal(size=(24, 2))})
    heat = [t for t in ex.detail.data if t.type == "heatmap"][0]
    assert np.isnan(np.asarray(heat.z, dtype=float)).all()         # nothing is painted
    images = [np.asarray(t.z) for t in ex.detail.data if t.type == "image"]
    assert all((im == 255).all() for im in images)                 # blank, like the page
    assert [a.text for a in ex.detail.layout.annotations] == ["no clip selected yet"]
    ex.select(2)
    assert not ex.detail.layout.annotations
    assert np.isfinite(np.asarray(heat.z, dtype=float)).all()


def test_map2d_places_new_points_next_to_their_neighbours():
    from amdd_kit import geometry as G
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 0.1, (12, 6)) + 1, rng.normal(0, 0.1, (12, 6)) - 1]
    xy = np.r_[np.zeros((12, 2)), np.full((12, 2), 10.0)]
    m = G.Map2D(xy, X)
    new = m.transform(np.r_[X[:2] + 0.01, X[-2:] - 0.01])
    assert np.abs(new[:2]).max() < 1 and np.abs(new[2:] - 10).max() < 1
    with pytest.raises(ValueError, match="dimensions"):
        m.transform(np.ones((1, 3)))


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    """A run folder with the tiny model at random weights (config.json + model.pth)."""
    import torch

    from amdd_kit.config import get_config
    from amdd_kit.models import build_model
    run = tmp_path_factory.mktemp("run")
    cfg = get_config("tiny")
    torch.manual_seed(0)
    torch.save(build_model(cfg).state_dict(), run / "model.pth")
    cfg.to_json(run / "config.json")
    return run, cfg


def _explorer_with_run(random_run, live=True):
    run, cfg = random_run
    d = cfg.model
    df = embeddings_table(n=24, d=d.d_embed)
    rng = np.random.default_rng(3)
    df["f_v"] = list(rng.normal(size=(24, d.d_fingerprint)).astype(np.float32))
    df["f_a"] = list(rng.normal(size=(24, d.d_fingerprint)).astype(np.float32))
    store = FakeStore(df)
    c = cfg.data
    store.frames = np.random.default_rng(0).integers(
        0, 255, (len(df) + 2, c.n_frames, 3, c.image_size, c.image_size), dtype=np.uint8)
    store.mels = np.zeros((len(df) + 2, c.n_mels, c.mel_frames), np.float16)
    coords = {s: rng.normal(size=(24, 2)) for s in ("shared", "visual", "audio")}
    return Wd.EmbeddingExplorer(df, store=store, coords=coords, run_dir=run, live=live)


@pytest.fixture(scope="module")
def live_explorer(random_run):
    """One explorer with a run for the video tests (the model loads once)."""
    return _explorer_with_run(random_run)


def test_a_students_video_is_placed_predicted_timed_and_explained(live_explorer, tmp_path):
    import media
    video = media.write_video(tmp_path / "mine.mp4", seconds=2.1)    # three 0.64 s windows
    ex = live_explorer
    sent = _record_updates(ex.fig)
    table = ex.add_video(video, fake_segments=[[0.5, 1.2]])
    assert table is not None, ex.status.value
    assert len(table) == 3 and list(table.window) == [0, 1, 2]
    assert np.allclose(table.start_s, [0, 0.64, 1.28])
    assert ((table.p_fake >= 0) & (table.p_fake <= 1)).all()
    assert table.pred_method.isin(METHODS).all()
    # the windows are stars on the map, placed among their nearest clips of the map
    star = ex.fig.data[ex.n_traces]
    assert star.visible and len(star.x) == 3 and star.marker.symbol == "star"
    assert np.allclose(np.c_[star.x, star.y], table[["x", "y"]].to_numpy())
    keys = {k for msg in sent for k in msg}
    assert not [k for k in keys if any(o.startswith(k + ".") for o in keys)]
    ex.space.value = "audio"                                  # placed again in that space
    assert len(ex.fig.data[ex.n_traces].x) == 3 and "audio" in ex.video["xy"]
    # the timeline: p_fake per window and the known fake segment, shown for > 1 window
    assert np.allclose(ex.timeline.data[1].y, table.p_fake)
    assert list(ex.timeline.data[0].x[:4]) == [0.5, 0.5, 1.2, 1.2]
    assert ex._timeline_out.layout.display == "flex"
    # the verdict in words: no open-set module yet -> the known generator, and it says so
    assert "mine.mp4" in ex.status.value and "3 window" in ex.status.value
    assert "Open-set rejection is not available" in ex.status.value
    # the first window is shown: Grad-CAM over its frames, its log-mel, its nearest clips
    assert "your video (mine.mp4), window 0" in ex.detail.layout.title.text
    assert "Grad-CAM" in ex.detail.layout.title.text
    heat = [t for t in ex.detail.data if t.type == "heatmap"][0]
    assert np.allclose(heat.z, ex.video["clips"].mels[0].astype(np.float32))
    assert "nearest clips" in ex.info.value and "<table>" in ex.info.value
    near = ex.nearest(0, k=3)
    assert len(near) == 3 and near.distance.is_monotonic_increasing
    ex.gradcam.value = False                                  # raw frames again
    img = [t for t in ex.detail.data if t.type == "image"][1]
    assert np.array_equal(img.z, ex.video["clips"].frames[0, 1].transpose(1, 2, 0))
    ex._on_video_click(star, types.SimpleNamespace(point_inds=[2]))       # a click on a star
    assert "window 2" in ex.detail.layout.title.text


@pytest.mark.parametrize("kind, words", [
    ("wall", "No face was found in wall.mp4"), ("noaudio", "has no audio track"),
    ("text", "could not be read as a video"), ("missing", "There is no file at"),
])
def test_an_unusable_video_is_a_sentence_in_the_widget(live_explorer, tmp_path, kind, words):
    import media
    path = {"wall": lambda: media.write_video(tmp_path / "wall.mp4", face=False),
            "noaudio": lambda: media.write_video(tmp_path / "noaudio.mp4", audio=None),
            "text": lambda: media.write_text_as_video(tmp_path / "text.mp4"),
            "missing": lambda: tmp_path / "nothing.mp4"}[kind]()
    ex = live_explorer
    before = ex.video
    assert ex.add_video(path) is None                         # no exception reaches the user
    assert words in ex.status.value, ex.status.value
    assert "Traceback" not in ex.status.value and ex.video is before


def test_an_uploaded_video_goes_through_the_same_path(live_explorer, tmp_path):
    import datetime

    import media
    data = media.write_video(tmp_path / "up.mp4", seconds=1.4).read_bytes()
    ex = live_explorer
    ex.upload.value = ({"name": "phone clip.mp4", "type": "video/mp4", "size": len(data),
                        "content": memoryview(data),
                        "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert ex.video is not None and ex.video["path"].name == "phone clip.mp4", ex.status.value
    assert len(ex.video["table"]) == 2 and not ex.video["path"].exists()   # temp file removed
    assert ex.upload.value == ()

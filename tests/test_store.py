"""preprocess_dataset -> pack -> ClipStore: contents, skips, atomic resume, config guard."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import media  # noqa: E402

from amdd_kit.config import DataConfig  # noqa: E402
from amdd_kit.data.preprocess import preprocess_dataset, video_id  # noqa: E402
from amdd_kit.data.store import ClipStore, clip_label, pack, store_dir  # noqa: E402

CFG = DataConfig()
PACKED = ("frames.npy", "mels.npy", "manifest.parquet", "skipped.csv")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A generic-CSV dataset: 3 usable videos, a corrupt one, a faceless one, a missing one."""
    d = tmp_path_factory.mktemp("ds")
    media.write_video(d / "v" / "real1.mp4")
    media.write_video(d / "v" / "fake1.mp4", seconds=2.0)
    media.write_video(d / "v" / "odd.mp4", width=320, height=240, channels=2)
    media.write_text_as_video(d / "v" / "broken.mp4")
    media.write_video(d / "v" / "wall.mp4", face=False)
    (d / "list.csv").write_text(
        "path,label,method,identity,fake_segments\n"
        "v/real1.mp4,0,real,p1,\n"
        'v/fake1.mp4,1,faceswap,p1,"[[0.0, 0.3]]"\n'
        "v/odd.mp4,1,mygan,p2,\n"
        "v/broken.mp4,1,fsgan,p2,\n"
        "v/wall.mp4,0,real,p3,\n"
        "v/gone.mp4,0,real,p3,\n")
    return d


@pytest.fixture(scope="module")
def built(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "s"
    summary = preprocess_dataset("csv", dataset, out, CFG, workers=1, progress=False)
    return out, summary


def test_summary_and_store_contents(built):
    out, s = built
    assert (s.videos, s.videos_ok, s.clips, s.processed) == (5, 3, 6, 5)
    assert s.skipped == {"corrupt": 1, "missing": 1, "no_face": 1}
    st = ClipStore(out)
    assert len(st) == 6
    assert st.frames.shape == (6, CFG.n_frames, 3, CFG.image_size, CFG.image_size)
    assert st.mels.shape == (6, CFG.n_mels, CFG.mel_frames) and st.mels.dtype == np.float16
    assert not st.frames.flags.writeable and isinstance(st.frames, np.memmap)
    m = st.manifest
    for c in ("path", "audio_path", "dataset", "identity", "label", "video_fake", "audio_fake",
              "method", "category", "fake_segments", "split", "clip_id", "video_id", "start_s",
              "clip_label", "method_idx"):
        assert c in m.columns, c
    assert list(m["clip_id"]) == list(range(6))
    assert (m.groupby("video_id").size() == 2).all()
    assert (m["video_id"] == [video_id("csv", p) for p in m["path"]]).all()
    idx = m.drop_duplicates("path").set_index("path")["method_idx"]
    assert idx.to_dict() == {"v/real1.mp4": 0, "v/fake1.mp4": 2, "v/odd.mp4": -1}
    # partial fake: only the window overlapping [0, 0.3] s is fake
    fake = m[m["path"] == "v/fake1.mp4"].sort_values("start_s")
    assert list(fake["label"]) == [1, 1]
    assert list(fake["clip_label"]) == [int(fake["start_s"].iloc[0] < 0.3 - 1 / CFG.fps), 0]
    # clips really hold the faces and the sound of their video
    assert st.frames[m["path"].eq("v/odd.mp4").to_numpy()].std() > 20
    sk = st.skipped.set_index("path")
    assert sk.loc["v/broken.mp4", "reason"] == "corrupt"
    assert sk.loc["v/wall.mp4", "reason"] == "no_face"
    assert sk.loc["v/gone.mp4", "reason"] == "missing"
    assert json.loads((out / "data_config.json").read_text()) == CFG.__dict__
    assert st.data_config == CFG


def test_resume_reprocesses_only_the_lost_video(built, dataset):
    out, _ = built
    before = ClipStore(out)
    frames_before = np.array(before.frames)
    man_before = before.manifest.copy()
    del before
    work = out / "_work"
    npz = sorted(work.glob("*.npz"))
    lost = npz[0]
    stamps = {p: p.stat().st_mtime_ns for p in npz[1:]}
    for name in PACKED:
        (out / name).unlink()
    lost.unlink()
    s = preprocess_dataset("csv", dataset, out, CFG, workers=1, progress=False)
    assert s.processed == 1 and s.clips == 6
    assert lost.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    st = ClipStore(out)
    np.testing.assert_array_equal(np.asarray(st.frames), frames_before)
    pd.testing.assert_frame_equal(st.manifest, man_before)
    # pack is repeatable and leaves no temporary files
    s2 = pack(out)
    assert s2.clips == 6 and not list(out.glob(".*tmp*")) and not list(work.glob(".*tmp*"))


def test_refuses_a_different_data_config(built, dataset):
    out, _ = built
    with pytest.raises(ValueError, match="image_size"):
        preprocess_dataset("csv", dataset, out, DataConfig(image_size=32), progress=False)


def test_clipstore_validates(built, tmp_path):
    out, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cfg = json.loads((copy / "data_config.json").read_text())
    cfg["n_frames"] = 16
    (copy / "data_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="frames.npy"):
        ClipStore(copy)
    (copy / "mels.npy").unlink()
    with pytest.raises(FileNotFoundError, match="mels.npy"):
        ClipStore(copy)


def test_pending_videos_are_listed(dataset, tmp_path):
    out = tmp_path / "s"
    preprocess_dataset("csv", dataset, out, CFG, progress=False, limit=2)
    (out / "_work" / f"{video_id('csv', 'v/real1.mp4')}.npz").unlink()
    s = pack(out)
    assert s.clips == 2 and s.skipped.get("pending") == 1
    assert "pending" in set(ClipStore(out).skipped["reason"])


def test_two_workers_give_the_same_store(built, dataset, tmp_path):
    out1, _ = built
    out2 = tmp_path / "s2"
    s = preprocess_dataset("csv", dataset, out2, CFG, workers=2, progress=False)
    assert s.clips == 6
    a, b = ClipStore(out1), ClipStore(out2)
    np.testing.assert_array_equal(np.asarray(a.frames), np.asarray(b.frames))
    np.testing.assert_array_equal(np.asarray(a.mels), np.asarray(b.mels))


def test_clip_label_and_store_dir():
    segs = json.dumps([[1.0, 1.5]])
    assert clip_label(0, segs, 1.0, 0.64, 25) == 0
    assert clip_label(1, "[]", 5.0, 0.64, 25) == 1
    assert clip_label(1, segs, 0.2, 0.64, 25) == 0      # ends at 0.84 s: no overlap
    assert clip_label(1, segs, 0.44, 0.64, 25) == 1     # ends at 1.08 s: 2 frames of overlap
    assert clip_label(1, segs, 0.40, 0.64, 25) == 1     # exactly 1 frame (0.04 s)
    assert clip_label(1, segs, 0.395, 0.64, 25) == 0    # 0.035 s < one frame
    assert clip_label(1, segs, 1.2, 0.64, 25) == 1      # starts inside the fake period
    assert store_dir("data", "lavdf", "tiny") == Path("data/stores/lavdf-tiny")
    assert store_dir("data", "fakeavceleb", "tiny", "trim") == \
        Path("data/stores/fakeavceleb-tiny-trim")


def test_clip_browser_headless(built):
    from amdd_kit.ui.browse import ClipBrowser, clip_figure
    st = ClipStore(built[0])
    fig = clip_figure(st, 3)
    assert "clip 3" in fig.layout.title.text
    img = fig.data[0].z if fig.data[0].z is not None else None
    assert np.asarray(img).shape == (CFG.image_size, CFG.image_size * CFG.n_frames, 3)
    b = ClipBrowser(st)
    b.method.value = "mygan"  # observers fire without a front end
    assert st.manifest.loc[b.clip.value, "method"] == "mygan"
    assert b.figure.layout.title.text.startswith(f"clip {b.clip.value}: mygan")
    with pytest.raises(IndexError):
        clip_figure(st, 99)


def test_clip_browser_shows_the_clip_once_and_keeps_it_as_an_output(built, monkeypatch):
    """Notebook 01 showed clip 0 twice (the widget's own copy and a static one for saved
    notebooks): the figure is now one ordinary output that the dropdowns update in place."""
    import IPython.display as ipd
    import plotly.graph_objects as go

    from amdd_kit.ui.browse import clip_browser

    shown, updated = [], []

    def display(*objs, **kw):
        for o in objs:
            if hasattr(o, "_ipython_display_") and not isinstance(o, go.Figure):
                o._ipython_display_()
            else:
                shown.append((o, kw))

    monkeypatch.setattr(ipd, "display", display)
    monkeypatch.setattr(ipd, "update_display", lambda o, **kw: updated.append((o, kw)))
    b = clip_browser(ClipStore(built[0]), clip_id=1)

    def is_figure(o):
        return isinstance(o, go.Figure) or (isinstance(o, dict) and any(
            "plotly" in k for k in o))
    figures = [(o, kw) for o, kw in shown if is_figure(o)]
    assert len(figures) == 1, shown                       # once, not twice
    fig, kw = figures[0]
    assert fig.layout.title.text.startswith("clip 1:") and kw.get("display_id")
    b.clip.value = 2                                      # a dropdown change: same output
    assert len([o for o, _ in shown if is_figure(o)]) == 1
    assert updated and updated[-1][1]["display_id"] == kw["display_id"]
    assert updated[-1][0].layout.title.text.startswith("clip 2:")


# -- encoded stores (frame_codec png / jpeg): shards + index ----------------------------------
PNG = DataConfig(frame_codec="png")
JPEG = DataConfig(frame_codec="jpeg", jpeg_quality=90)


@pytest.fixture(scope="module")
def built_png(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("store_png") / "s"
    preprocess_dataset("csv", dataset, out, PNG, workers=1, progress=False)
    return out


def _same_store(a: ClipStore, b: ClipStore) -> None:
    np.testing.assert_array_equal(np.asarray(a.frames), np.asarray(b.frames))
    np.testing.assert_array_equal(np.asarray(a.mels), np.asarray(b.mels))
    pd.testing.assert_frame_equal(a.manifest, b.manifest)
    # FFmpeg appends its last log line to some error messages, and that line depends on what
    # the process decoded before: compare what was skipped and why, not the wording
    cols = ["path", "reason"]
    pd.testing.assert_frame_equal(a.skipped[cols], b.skipped[cols])


def test_png_store_is_lossless_and_compact(built, built_png):
    from amdd_kit.data import shards
    from amdd_kit.data.store import EncodedFrames
    raw, png = ClipStore(built[0]), ClipStore(built_png)
    assert isinstance(png.frames, EncodedFrames) and png.frames.shape == raw.frames.shape
    assert png.data_config == PNG and not (built_png / "frames.npy").exists()
    _same_store(raw, png)  # PNG is lossless: bit-identical to the raw store
    assert png.frames[2].shape == (CFG.n_frames, 3, CFG.image_size, CFG.image_size)
    np.testing.assert_array_equal(png.frames[1:3], raw.frames[1:3])
    np.testing.assert_array_equal(png.frames[np.array([4, 0])], raw.frames[np.array([4, 0])])
    with pytest.raises(IndexError):
        png.frames[6]
    # one copy on disk: no work items left once the videos are in the shards
    assert not list((built_png / "_work").glob("*.npz"))
    size = sum(p.stat().st_size for p in shards.shard_paths(built_png))
    assert 0 < size < raw.frames.nbytes
    assert png.clip(3)["frames"].shape == raw.clip(3)["frames"].shape


def test_jpeg_store_is_close_to_raw_and_smaller_than_png(built, built_png, dataset, tmp_path):
    from amdd_kit.data import shards
    out = tmp_path / "j"
    s = preprocess_dataset("csv", dataset, out, JPEG, workers=1, progress=False)
    assert s.clips == 6
    raw, jp = ClipStore(built[0]), ClipStore(out)
    err = np.abs(np.asarray(jp.frames).astype(int) - np.asarray(raw.frames).astype(int))
    assert 0 < err.mean() < 3
    np.testing.assert_array_equal(np.asarray(jp.mels), np.asarray(raw.mels))
    pd.testing.assert_frame_equal(jp.manifest, raw.manifest)
    size = lambda d: sum(p.stat().st_size for p in shards.shard_paths(d))  # noqa: E731
    assert size(out) < size(built_png)


def test_encoded_store_rolls_over_shards_and_two_workers_agree(built_png, dataset, tmp_path,
                                                               monkeypatch):
    from amdd_kit.data import shards
    monkeypatch.setattr(shards, "SHARD_BYTES", 1)  # a new shard for every video
    out = tmp_path / "s2"
    preprocess_dataset("csv", dataset, out, PNG, workers=2, progress=False)
    assert len(shards.shard_paths(out)) == 3
    _same_store(ClipStore(built_png), ClipStore(out))
    # pack is repeatable and writes the same index
    idx = np.load(out / "frames_index.npy")
    pack(out)
    np.testing.assert_array_equal(np.load(out / "frames_index.npy"), idx)
    assert not list(out.glob(".*tmp*"))


def test_encoded_store_survives_torn_writes(built_png, dataset, tmp_path):
    """Every state a kill -9 can leave: a record cut at any byte, a complete record whose work
    item was not deleted yet, a corrupt last record: the next run ends with the same store."""
    from amdd_kit.data import shards
    ref = ClipStore(built_png)
    base = tmp_path / "base"
    shutil.copytree(built_png, base)
    shard = shards.shard_paths(base)[0]
    recs = sorted(shards.scan(base).values(), key=lambda r: r.begin)
    last = recs[-1]
    end = shard.stat().st_size
    cuts = [last.begin + 3, last.begin + 20, last.offset - 1, last.offset + 10, end - 1, end]
    for k, cut in enumerate(cuts):
        out = tmp_path / f"cut{k}"
        shutil.copytree(base, out)
        for name in PACKED[1:] + ("frames_index.npy",):
            (out / name).unlink()
        with open(out / shard.name, "r+b") as f:
            f.truncate(cut)
        s = preprocess_dataset("csv", dataset, out, PNG, workers=1, progress=False)
        assert s.processed == (0 if cut == end else 1), cut
        _same_store(ref, ClipStore(out))
        assert shard.stat().st_size == end
    # a flipped byte in the last record: its CRC fails, the video is redone
    out = tmp_path / "crc"
    shutil.copytree(base, out)
    with open(out / shard.name, "r+b") as f:
        f.seek(end - 5)
        b = f.read(1)
        f.seek(end - 5)
        f.write(bytes([b[0] ^ 0xFF]))
    s = preprocess_dataset("csv", dataset, out, PNG, workers=1, progress=False)
    assert s.processed == 1
    _same_store(ref, ClipStore(out))
    # the record made it but the work item was not deleted yet: no duplicate record
    out = tmp_path / "dup"
    shutil.copytree(base, out)
    vid = last.header["vid"]
    from amdd_kit.data.workdir import save_work_item
    item = ClipStore(base)
    rows = item.manifest.index[item.manifest["video_id"] == vid]
    frames = np.asarray(item.frames[rows.to_numpy()])
    from amdd_kit.data.codec import encode_frames
    save_work_item(out / "_work", vid, None, np.asarray(item.mels[rows.to_numpy()]),
                   np.asarray(last.header["starts"]), last.header["info"],
                   frames_enc=encode_frames(frames, "png"))
    s = pack(out)
    assert s.clips == 6 and not list((out / "_work").glob("*.npz"))
    assert shard.stat().st_size == end == (out / shard.name).stat().st_size
    _same_store(ref, ClipStore(out))


def test_kill9_during_preprocessing_resumes_to_the_same_store(built_png, dataset, tmp_path):
    """A real ``kill -9`` of a preprocessing process, at several moments, then a clean run."""
    import signal
    import subprocess
    import time
    out = tmp_path / "k"
    code = ("import sys; from amdd_kit.config import DataConfig; "
            "from amdd_kit.data.preprocess import preprocess_dataset; "
            f"preprocess_dataset('csv', {str(dataset)!r}, {str(out)!r}, "
            "DataConfig(frame_codec='png'), workers=1, progress=False)")
    videos = out / "_work" / "videos.parquet"
    killed = 0
    for delay in (0.0, 0.05, 0.1, 0.15, 0.2):  # after the imports; one video takes ~0.1 s
        t0 = time.time()
        p = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1])
        while p.poll() is None and not (videos.exists() and videos.stat().st_mtime > t0):
            time.sleep(0.002)  # wait until this run has read the dataset
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        killed += p.wait() == -signal.SIGKILL
    assert killed >= 3
    s = preprocess_dataset("csv", dataset, out, PNG, workers=1, progress=False)
    assert s.clips == 6
    _same_store(ClipStore(built_png), ClipStore(out))
    assert not list((out / "_work").glob("*.npz"))


def test_old_store_config_without_codec_fields_is_accepted(built, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(built[0], copy)
    d = json.loads((copy / "data_config.json").read_text())
    for k in ("frame_codec", "jpeg_quality", "jpeg_chroma"):
        d.pop(k)
    (copy / "data_config.json").write_text(json.dumps(d))
    st = ClipStore(copy)
    assert st.data_config == CFG
    pack(copy, CFG)  # the config guard reads the missing fields as the old behaviour (raw)


def test_codec_roundtrip_and_errors():
    from amdd_kit.config import get_config
    from amdd_kit.data.codec import (CHROMA, check_codec, codec_label, complete_jpeg,
                                     decode_frames, decode_frames_torch, encode_frames,
                                     encoded_bytes_per_frame, roundtrip)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    smooth = (120 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0))[None, None]
    checker = np.where((xx + yy) % 2 == 0, 6, -6)[None, None]
    frames = np.clip(np.concatenate([smooth, smooth * 0.8, smooth * 0.6], 1) + checker
                     + rng.normal(0, 1, (4, 3, 64, 64)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(roundtrip(frames, "png"), frames)
    np.testing.assert_array_equal(roundtrip(frames, "raw"), frames)
    errs = [np.abs(roundtrip(frames, "jpeg", q).astype(int) - frames).mean() for q in (50, 90, 98)]
    assert errs[0] > errs[1] > errs[2] > 0
    sizes = [encoded_bytes_per_frame(frames, "jpeg", q, c) for q, c in
             ((90, "420"), (90, "444"), (98, "444"))]
    assert sizes[0] < sizes[1] < sizes[2] < encoded_bytes_per_frame(frames, "raw")
    # the 2-px checkerboard survives JPEG q90: the pixel-alternating component keeps its sign
    alt = lambda f: (f.astype(float) * np.where((xx + yy) % 2 == 0, 1, -1)).mean()  # noqa: E731
    assert alt(roundtrip(frames, "jpeg", 90)) > 0.7 * alt(frames)
    paper = get_config("paper").data   # and at the quality the paper store uses
    assert alt(roundtrip(frames, "jpeg", paper.jpeg_quality, paper.jpeg_chroma)) > 0.7 * alt(frames)
    assert codec_label("jpeg", 85, "420") == "jpeg q85 4:2:0" and codec_label("png") == "png"
    enc = encode_frames(frames, "jpeg", 90)
    assert len(enc) == 4 and decode_frames(enc).shape == frames.shape
    # stored as Motion-JPEG stores frames: without the shared JFIF and Huffman segments (~450
    # bytes), close to optimised tables in size; complete_jpeg restores a standalone JPEG
    bgr = [np.ascontiguousarray(f[::-1].transpose(1, 2, 0)) for f in frames]
    std = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in bgr]
    opt = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
           [1].tobytes() for f in bgr]
    assert all(len(e) <= len(s) - 400 for e, s in zip(enc, std))
    assert sum(map(len, enc)) < 1.1 * sum(map(len, opt))
    header = lambda b: b[:b.index(b"\xff\xda")]  # noqa: E731  (everything before the scan)
    assert all(b"\xff\xc4" not in header(e) for e in enc)                  # no Huffman tables
    assert all(b"\xff\xc4" in header(complete_jpeg(e)) for e in enc) and all(  # put back:
        cv2.imdecode(np.frombuffer(complete_jpeg(e), np.uint8), cv2.IMREAD_COLOR) is not None
        for e in enc)                                     # a standalone JPEG any decoder reads
    np.testing.assert_array_equal(decode_frames(enc), decode_frames(std))
    np.testing.assert_array_equal(decode_frames(enc), decode_frames(opt))
    assert complete_jpeg(std[0]) == std[0] and complete_jpeg(b"\x89PNG") == b"\x89PNG"
    for q, c in ((20, "444"), (98, "420")):  # the shared segments do not depend on the settings
        e = encode_frames(frames[:1], "jpeg", q, c)[0]
        assert len(e) < len(complete_jpeg(e)) - 400
        full = cv2.imencode(".jpg", bgr[0], [cv2.IMWRITE_JPEG_QUALITY, q,
                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, CHROMA[c]])[1]
        np.testing.assert_array_equal(decode_frames([e]), decode_frames([full.tobytes()]))
    with pytest.raises(ValueError, match="torn|JPEG"):
        decode_frames([enc[0][:40]])                   # a header cut before its scan
    tv = decode_frames_torch(enc).numpy()
    assert np.abs(tv.astype(int) - decode_frames(enc).astype(int)).max() <= 2
    np.testing.assert_array_equal(decode_frames_torch(encode_frames(frames, "png")).numpy(),
                                  frames)
    for bad in (("webp", 90, "420"), ("jpeg", 0, "420"), ("jpeg", 90, "422")):
        with pytest.raises(ValueError):
            check_codec(*bad)


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from amdd_kit.data.workdir import remove_stale_temporaries
    dead = tmp_path / ".abc.4194303.tmp.npz"         # above Linux's default pid_max: no such process
    live = tmp_path / f".abc.{os.getppid()}.tmp.npz"  # our parent is alive
    done = tmp_path / "abc.npz"
    for p in (dead, live, done):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and done.exists() and not dead.exists()


def test_the_write_path_runs_one_way():
    """preprocess -> workdir -> shards, and preprocess -> store.pack -> workdir -> shards: each
    module of the write path uses only the ones below it, only ``workdir`` writes to the shards,
    and ``store`` uses the shards' read side alone (file names), never a writer."""
    import ast

    data = Path(__file__).parent.parent / "amdd_kit" / "data"
    order = ["shards", "workdir", "store", "preprocess"]

    def uses(name: str) -> tuple[set[str], set[str]]:
        tree = ast.parse((data / f"{name}.py").read_text())
        mods = {a.name if n.module is None else n.module.split(".")[0]
                for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1
                for a in n.names}
        shard_attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                       and isinstance(n.value, ast.Name) and n.value.id == "shards"}
        return mods & set(order), shard_attrs

    for i, name in enumerate(order):
        mods, _ = uses(name)
        assert mods <= set(order[:i]), f"{name} imports {sorted(mods - set(order[:i]))}"
    assert "shards" not in uses("preprocess")[0]
    assert uses("store")[1] <= {"shard_name", "shard_paths"}
    assert "ShardWriter" in uses("workdir")[1]

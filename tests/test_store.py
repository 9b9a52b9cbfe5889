"""preprocess_dataset -> pack -> ClipStore: contents, skips, atomic resume, config guard."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

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
    from amdd_kit.data.browse import ClipBrowser, clip_figure
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

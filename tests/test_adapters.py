"""Adapters on small fixture trees that carry each real-dataset quirk (files are empty stubs:
adapters read metadata and check existence, they do not decode)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from amdd_kit.data.adapters import read_dataset
from amdd_kit.data.adapters.manifest import MANIFEST_COLUMNS, DatasetError, safe_relpath

HEADER = "source,target1,target2,method,category,type,race,gender,path,\n"


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\0")
    return p


def _fakeavceleb(base: Path) -> Path:
    """Double-nested FakeAVCeleb with the quirks of the real meta_data.csv."""
    root = base / "FakeAVCeleb_v1.2" / "FakeAVCeleb_v1.2"
    rows = [
        # source,t1,t2,method,category,type,race,gender,file,dir
        ("id00076", "-", "-", "real", "A", "RealVideo-RealAudio", "African", "men", "00109.mp4",
         "FakeAVCeleb/RealVideo-RealAudio/African/men/id00076"),
        ("id00076", "-", "id00001", "rtvc", "B", "RealVideo-FakeAudio", "African", "men",
         "00109_fake.mp4", "FakeAVCeleb/RealVideo-FakeAudio/African/men/id00076"),
        ("id00166", "id00077", "-", "faceswap", "C", "FakeVideo-RealAudio", "Asian (East)",
         "women", "00001_id00077.mp4",
         "FakeAVCeleb/FakeVideo-RealAudio/Asian (East)/women/id00166"),
        # the same physical file listed twice under two methods
        ("id00166", "id00077", "-", "fsgan", "C", "FakeVideo-RealAudio", "Asian (East)",
         "women", "00001_id00077.mp4",
         "FakeAVCeleb/FakeVideo-RealAudio/Asian (East)/women/id00166"),
        # the same file name in another folder: a different video
        ("id00200", "id00077", "id00003", "fsgan-wav2lip", "D", "FakeVideo-FakeAudio",
         "Caucasian (European)", "men", "00001_id00077.mp4",
         "FakeAVCeleb/FakeVideo-FakeAudio/Caucasian (European)/men/id00200"),
        ("id00200", "-", "-", "real", "A", "RealVideo-RealAudio", "Caucasian (European)", "men",
         "00003.mp4", "FakeAVCeleb/RealVideo-RealAudio/Caucasian (European)/men/id00200"),
        # listed but not on disk
        ("id00300", "-", "-", "real", "A", "RealVideo-RealAudio", "African", "women",
         "00404.mp4", "FakeAVCeleb/RealVideo-RealAudio/African/women/id00300"),
        # escapes the root
        ("id00301", "-", "-", "real", "A", "RealVideo-RealAudio", "African", "women",
         "evil.mp4", "FakeAVCeleb/../../outside"),
        ("id00302", "-", "-", "real", "A", "RealVideo-RealAudio", "African", "women",
         "link.mp4", "FakeAVCeleb/RealVideo-RealAudio/African/women/id00302"),
    ]
    root.mkdir(parents=True)
    lines = [HEADER]
    for r in rows:
        *fields, name, directory = r
        lines.append(",".join(f'"{v}"' if " " in v else v for v in fields) +
                     f",{name},{directory}\n")
        if r[0] not in ("id00300", "id00301", "id00302"):
            _touch(root / directory.removeprefix("FakeAVCeleb/") / name)
    (root / "meta_data.csv").write_text("".join(lines))
    _touch(base / "outside" / "evil.mp4")
    secret = _touch(base / "secret.mp4")
    link = root / "RealVideo-RealAudio/African/women/id00302/link.mp4"
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, link)
    return root


def test_fakeavceleb_quirks(tmp_path):
    root = _fakeavceleb(tmp_path)
    res = read_dataset("fakeavceleb", tmp_path / "FakeAVCeleb_v1.2")  # root two levels above
    assert res.root == root.resolve()
    m = res.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS)
    assert len(m) == 5
    assert m["path"].is_unique
    assert (res.root / m["path"]).map(Path.is_file).all()
    assert not m["path"].str.startswith("FakeAVCeleb/").any()
    # repeated file name in two folders -> two rows
    assert (m["path"].str.endswith("00001_id00077.mp4")).sum() == 2
    # duplicate: first kept, second reported
    row = m[m["path"].str.contains("Asian \\(East\\)")].iloc[0]
    assert row["method"] == "faceswap" and row["category"] == "FVRA"
    assert (row["video_fake"], row["audio_fake"], row["label"]) == (1, 0, 1)
    probs = res.problems.set_index("reason")
    assert "duplicate" in probs.index and "fsgan" in probs.loc["duplicate", "detail"]
    assert probs.loc["missing", "path"].endswith("00404.mp4")
    assert sorted(res.problems["reason"]) == ["duplicate", "missing", "unsafe_path", "unsafe_path"]
    rvfa = m[m["method"] == "rtvc"].iloc[0]
    assert (rvfa["category"], rvfa["video_fake"], rvfa["audio_fake"]) == ("RVFA", 0, 1)
    real = m[m["method"] == "real"]
    assert (real["label"] == 0).all() and set(real["identity"]) == {"id00076", "id00200"}
    assert (m["fake_segments"] == "[]").all() and (m["audio_path"] == "").all()
    # the face donor (target1) is kept; "-" becomes ""
    assert row["donor"] == "id00077"
    assert set(real["donor"]) == {""} and rvfa["donor"] == ""   # rtvc: target2 is a voice
    assert m.loc[m["method"] == "fsgan-wav2lip", "donor"].tolist() == ["id00077"]


def test_fakeavceleb_absolute_directory_is_unsafe_not_missing(tmp_path):
    """An absolute directory is refused, even when the same path exists under the root."""
    root = tmp_path / "fav"
    outside = tmp_path / "elsewhere" / "RealVideo-RealAudio" / "African" / "men" / "id00009"
    _touch(outside / "00001.mp4")
    _touch(root / str(outside).lstrip("/") / "00001.mp4")      # the stripped twin
    _touch(root / "RealVideo-RealAudio/African/men/id00010/00002.mp4")
    (root / "meta_data.csv").write_text(
        HEADER +
        f"id00009,-,-,real,A,RealVideo-RealAudio,African,men,00001.mp4,{outside}\n"
        "id00010,-,-,real,A,RealVideo-RealAudio,African,men,00002.mp4,"
        "FakeAVCeleb/RealVideo-RealAudio/African/men/id00010\n")
    res = read_dataset("fakeavceleb", root)
    assert list(res.manifest["identity"]) == ["id00010"]
    assert list(res.problems["reason"]) == ["unsafe_path"]
    assert "absolute" in res.problems.iloc[0]["detail"]


def test_fakeavceleb_root_is_metadata_folder_and_errors(tmp_path):
    root = _fakeavceleb(tmp_path)
    assert len(read_dataset("fakeavceleb", root).manifest) == 5
    with pytest.raises(DatasetError, match="meta_data.csv"):
        read_dataset("fakeavceleb", tmp_path / "outside")
    with pytest.raises(ValueError, match="fakeavceleb"):
        read_dataset("celebdf", root)
    with pytest.raises(FileNotFoundError):
        read_dataset("fakeavceleb", tmp_path / "nowhere")


def test_safe_relpath(tmp_path):
    _touch(tmp_path / "a" / "b.mp4")
    assert safe_relpath(tmp_path, "a/./b.mp4") == ("a/b.mp4", "")
    assert safe_relpath(tmp_path, "a\\b.mp4")[0] == "a/b.mp4"
    for bad in ("/etc/passwd", "C:/x.mp4", "a/../../x.mp4", ""):
        assert safe_relpath(tmp_path, bad)[0] is None


def test_lavdf(tmp_path):
    items = [
        {"file": "train/000001.mp4", "split": "train", "modify_video": False,
         "modify_audio": False, "fake_periods": [], "original": None, "n_fakes": 0},
        {"file": "train/000002.mp4", "split": "train", "modify_video": True,
         "modify_audio": False, "fake_periods": [[1.2, 1.6]], "original": "000001.mp4"},
        {"file": "dev/000003.mp4", "split": "dev", "modify_video": False, "modify_audio": True,
         "fake_periods": [[0.5, 0.9], [2.0, 2.3]], "original": "train/000001.mp4"},
        {"file": "test/000004.mp4", "split": "test", "modify_video": True, "modify_audio": True,
         "fake_periods": [[0.0, 0.4]], "original": "000009.mp4"},
        {"file": "test/000005.mp4", "split": "test", "modify_video": False,
         "modify_audio": False, "fake_periods": [], "original": None},  # not on disk
        {"file": "../x.mp4", "modify_video": False, "modify_audio": False},
    ]
    for it in items[:4]:
        _touch(tmp_path / it["file"])
    (tmp_path / "metadata.min.json").write_text(json.dumps(items))
    res = read_dataset("lavdf", tmp_path)
    m = res.manifest.set_index("path")
    assert list(m["method"]) == ["real", "lavdf-visual", "lavdf-audio", "lavdf-audiovisual"]
    assert list(m["label"]) == [0, 1, 1, 1]
    assert json.loads(m.loc["dev/000003.mp4", "fake_segments"]) == [[0.5, 0.9], [2.0, 2.3]]
    assert m.loc["dev/000003.mp4", "category"] == "RVFA"
    assert m.loc["dev/000003.mp4", "split"] == "dev"
    # a fake and its original share an identity
    assert m.loc["train/000001.mp4", "identity"] == m.loc["train/000002.mp4", "identity"] \
        == m.loc["dev/000003.mp4", "identity"]
    assert sorted(res.problems["reason"]) == ["missing", "unsafe_path"]
    with pytest.raises(DatasetError, match="metadata.json"):
        read_dataset("lavdf", tmp_path / "train")


def test_dftimit_with_vidtimit(tmp_path):
    for q in ("higher_quality", "lower_quality"):
        _touch(tmp_path / "DeepfakeTIMIT" / q / "fadg0" / "sa1-video-fram1.avi")
        _touch(tmp_path / "DeepfakeTIMIT" / q / "fadg0" / "sa1.wav")
    _touch(tmp_path / "DeepfakeTIMIT" / "lower_quality" / "mcem0" / "si1.avi")  # no wav
    v = tmp_path / "vidtimit" / "fadg0"
    _touch(v / "video" / "sa1" / "001")
    _touch(v / "video" / "sa1" / "002")
    _touch(v / "audio" / "sa1.wav")
    _touch(v / "video" / "head" / "001")          # head rotation: ignored
    _touch(v / "video" / "sx19" / "001")          # no audio: problem
    res = read_dataset("dftimit", tmp_path)
    m = res.manifest.set_index("path")
    hq = m.loc["DeepfakeTIMIT/higher_quality/fadg0/sa1-video-fram1.avi"]
    assert (hq["method"], hq["audio_path"], hq["identity"], hq["video_fake"], hq["audio_fake"]) \
        == ("dftimit-hq", "DeepfakeTIMIT/higher_quality/fadg0/sa1.wav", "fadg0", 1, 0)
    assert hq["donor"] == "fram1"
    assert m.loc["DeepfakeTIMIT/lower_quality/mcem0/si1.avi", "donor"] == ""
    assert m.loc["vidtimit/fadg0/video/sa1", "donor"] == ""
    assert m.loc["DeepfakeTIMIT/lower_quality/mcem0/si1.avi", "audio_path"] == ""
    real = m.loc["vidtimit/fadg0/video/sa1"]
    assert (real["method"], real["label"], real["audio_path"]) == \
        ("real", 0, "vidtimit/fadg0/audio/sa1.wav")
    assert not any("head" in p for p in m.index)
    assert list(res.problems["reason"]) == ["missing"]
    assert sorted(m["method"].unique()) == ["dftimit-hq", "dftimit-lq", "real"]


def test_dfdm(tmp_path):
    names = ["id28_id20_0008_1faceswap", "id28_id20_0008_2lightweight", "id3_id7_0001_3iae",
             "id3_id7_0001_4dfaker", "id3_id7_0001_5dfl_h128", "id3_id7_0001_6newgan"]
    for crf in ("DFDM_crf0", "DFDM_crf23"):
        for n in names:
            _touch(tmp_path / crf / "videos" / f"{n}.mp4")
    _touch(tmp_path / "DFDM_crf0" / "videos" / "readme.mp4")
    _touch(tmp_path / "Celeb-real" / "id28_0008.mp4")
    res = read_dataset("dfdm", tmp_path)
    m = res.manifest
    assert len(m) == 13
    methods = m[m["path"].str.startswith("DFDM_crf0")].set_index("path")["method"]
    assert list(methods) == ["dfdm-faceswap", "dfdm-lightweight", "dfdm-iae", "dfdm-dfaker",
                             "dfdm-dfl-h128", "dfdm-newgan"]
    real = m[m["method"] == "real"].iloc[0]
    assert (real["identity"], real["label"]) == ("id28", 0)
    assert set(m[m["path"].str.contains("id28_id20")]["identity"]) == {"id28"}
    assert set(m[m["path"].str.contains("id28_id20")]["donor"]) == {"id20"}
    assert set(m[m["path"].str.contains("id3_id7")]["donor"]) == {"id7"}
    assert real["donor"] == ""
    assert list(res.problems["reason"]) == ["bad_metadata"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="DFDM_crf"):
        read_dataset("dfdm", tmp_path / "empty")


def test_generic_csv(tmp_path):
    _touch(tmp_path / "v" / "a.mp4")
    _touch(tmp_path / "v" / "b.mp4")
    _touch(tmp_path / "v" / "b.wav")
    (tmp_path / "list.csv").write_text(
        "path,label,method,identity,audio_path,donor\n"
        "v/a.mp4,real,real,p1,,\n"
        "v/b.mp4,1,mygan,p1,v/b.wav,p9\n"
        "v/c.mp4,0,real,p2,,\n"
        "/abs.mp4,1,x,p3,,\n"
        "v/a.mp4,maybe,x,p3,,\n")
    res = read_dataset("csv", tmp_path)
    m = res.manifest
    assert list(m["donor"]) == ["", "p9"]
    assert list(m["label"]) == [0, 1] and list(m["method"]) == ["real", "mygan"]
    assert m.iloc[1]["audio_path"] == "v/b.wav" and m.iloc[1]["video_fake"] == 1
    assert sorted(res.problems["reason"]) == ["bad_metadata", "missing", "unsafe_path"]
    same = read_dataset("csv", tmp_path / "list.csv")
    assert same.manifest.equals(m)
    (tmp_path / "other.csv").write_text("path,label\n")
    with pytest.raises(DatasetError, match="exactly one"):
        read_dataset("csv", tmp_path)
    with pytest.raises(DatasetError, match="method"):
        read_dataset("csv", tmp_path / "other.csv")


# -- AV-Deepfake1M ---------------------------------------------------------------------------------
def _av1m_items(suffix: str) -> list[dict]:
    """AV-Deepfake1M metadata objects, the segment fields spelt ``*_<suffix>``."""
    def item(file, original, mtype, model, fake, visual, audio, **extra):
        return {"file": file, "original": original, "modify_type": mtype, "audio_model": model,
                f"fake_{suffix}": fake, f"visual_fake_{suffix}": visual,
                f"audio_fake_{suffix}": audio, "video_frames": 75, "audio_frames": 48000,
                **extra}
    return [
        item("id00012/abc/00001/real.mp4", "id00012/abc/00001.mp4", "real", "", [], [], []),
        item("id00012/abc/00001/fake_video.mp4", "id00012/abc/00001.mp4", "visual_modified",
             "yourtts", [[0.9, 1.2]], [[0.9, 1.2]], []),
        item("id00012/abc/00001/fake_audio.mp4", "id00012/abc/00001.mp4", "audio_modified",
             "YourTTS", [[0.2, 0.5]], [], [[0.2, 0.5]]),
        item("id00034/xyz/00002/fake_both.mp4", "id00034/xyz/00002.mp4", "both-modified",
             "vits", [[0.1, 0.3], [1.0, 1.1]], [[0.1, 0.3]], [[1.0, 1.1]]),
        item("id00034/xyz/00002/gone.mp4", None, "real", "", [], [], []),       # not on disk
        item("../../outside.mp4", None, "real", "", [], [], []),                # unsafe
        item("id00034/xyz/00002/odd.mp4", None, "half_modified", "", [], [], []),
    ]


def _av1m(root: Path) -> Path:
    """AV-Deepfake1M layout: train with ``*_segments``, val with ``*_periods`` (no top-level
    ``fake_periods`` there: the union of the visual and audio ones is used)."""
    train = _av1m_items("segments")
    val = [{k: v for k, v in it.items() if k != "fake_periods"} for it in _av1m_items("periods")]
    for split, items in (("train", train), ("val", val)):
        for it in items[:4] + items[6:]:
            _touch(root / split / it["file"])
        (root / f"{split}_metadata.json").write_text(json.dumps(items))
    (root / "test_files.txt").write_text("id00099/q/00001/x.mp4\n")
    return root


def test_av1m_labels_methods_identities(tmp_path):
    from amdd_kit.data.store import clip_label

    res = read_dataset("av1m", _av1m(tmp_path / "AV-Deepfake1M"))
    m = res.manifest
    assert list(m.columns) == list(MANIFEST_COLUMNS) and len(m) == 8
    assert set(m["split"]) == {"train", "val"} and (m["dataset"] == "av1m").all()
    for split in ("train", "val"):
        g = m[m["split"] == split].set_index("path")
        p = f"{split}/id00012/abc/00001/"
        assert list(g["method"]) == ["real", "av1m-visual", "av1m-audio-yourtts",
                                     "av1m-audiovisual-vits"]
        assert list(g["label"]) == [0, 1, 1, 1]
        assert list(g["category"]) == ["RVRA", "FVRA", "RVFA", "FVFA"]
        assert (g.loc[p + "fake_video.mp4", "video_fake"], g.loc[p + "fake_video.mp4",
                                                                  "audio_fake"]) == (1, 0)
        assert json.loads(g.loc[p + "fake_audio.mp4", "fake_segments"]) == [[0.2, 0.5]]
        both = json.loads(g.loc[f"{split}/id00034/xyz/00002/fake_both.mp4", "fake_segments"])
        assert both == [[0.1, 0.3], [1.0, 1.1]]
        assert json.loads(g.loc[p + "real.mp4", "fake_segments"]) == []
        assert list(g["identity"]) == ["id00012", "id00012", "id00012", "id00034"]
        # partial fakes: windows are labelled by overlap, as LAV-DF's are (0.64 s windows)
        seg = g.loc[p + "fake_video.mp4", "fake_segments"]
        assert [clip_label(1, seg, s, 0.64, 25.0) for s in (0.0, 0.64)] == [0, 1]
        assert clip_label(0, g.loc[p + "real.mp4", "fake_segments"], 0.0, 0.64, 25.0) == 0
    reasons = sorted(res.problems["reason"])
    assert reasons == ["bad_metadata"] * 2 + ["missing"] * 2 + ["unsafe_path"] * 2
    assert "half_modified" in " ".join(res.problems["detail"])
    with pytest.raises(DatasetError, match="metadata"):
        read_dataset("av1m", tmp_path / "AV-Deepfake1M" / "train" / "id00012")


def test_av1m_root_one_level_above_and_file_paths_from_the_root(tmp_path):
    root = tmp_path / "dl" / "av1m"
    _touch(root / "train" / "id00001" / "a" / "00001" / "real.mp4")
    items = [{"file": "train/id00001/a/00001/real.mp4", "split": "train", "original": None,
              "modify_type": "real", "audio_model": "", "fake_segments": []}]
    (root / "train_metadata.json").write_text(json.dumps(items))
    res = read_dataset("av1m", tmp_path / "dl")
    assert res.root == root.resolve()
    assert list(res.manifest["path"]) == ["train/id00001/a/00001/real.mp4"]
    assert list(res.manifest["identity"]) == ["id00001"]


def test_av1m_through_preprocess_keeps_window_labels_and_donor_column(tmp_path):
    """Tiny real media through preprocess + pack: the clip store labels each window."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    import media

    from amdd_kit.config import DataConfig
    from amdd_kit.data.preprocess import preprocess_dataset
    from amdd_kit.data.store import ClipStore

    root = tmp_path / "av1m"
    media.write_video(root / "train" / "id00005/v/00001/real.mp4", seconds=1.5)
    media.write_video(root / "train" / "id00005/v/00001/fake_video.mp4", seconds=1.5)
    items = [{"file": "id00005/v/00001/real.mp4", "original": None, "modify_type": "real",
              "audio_model": "", "fake_segments": [], "split": "train"},
             {"file": "id00005/v/00001/fake_video.mp4", "original": "id00005/v/00001.mp4",
              "modify_type": "visual_modified", "audio_model": "yourtts",
              "visual_fake_periods": [[0.9, 1.2]], "audio_fake_periods": [], "split": "train"}]
    (root / "train_metadata.json").write_text(json.dumps(items))
    cfg = DataConfig()                      # tiny: 0.64 s windows, 2 per video
    preprocess_dataset("av1m", root, tmp_path / "store", cfg, workers=1, progress=False)
    man = ClipStore(tmp_path / "store").manifest
    assert "donor" in man.columns
    fake = man[man["method"] == "av1m-visual"].sort_values("start_s")
    real = man[man["method"] == "real"]
    assert len(fake) == 2 and len(real) == 2
    assert list(fake["label"]) == [1, 1] and list(fake["clip_label"]) == [0, 1]
    assert (real["clip_label"] == 0).all()

"""Evaluation protocol: metric blocks, unseen generators, and a whole evaluate_run on a toy run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from amdd_kit import evaluate as Ev
from amdd_kit.config import METHODS, get_config

T, HW, N_MELS, S = 2, 8, 8, 8


def table(methods, labels, p_fake, pred_methods):
    return pd.DataFrame({"method": methods, "label": labels, "clip_label": labels,
                         "p_fake": p_fake, "pred_method": pred_methods})


def test_cross_block_counts_real_and_fake_recall_and_landing():
    df = table(["real"] * 4 + ["x"] * 6, [0] * 4 + [1] * 6,
               [0.1, 0.2, 0.3, 0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.6],
               ["real"] * 4 + ["fsgan", "real", "real", "real", "wav2lip", "fsgan"])
    b = Ev.cross_block(df)
    assert b["real_recall"] == pytest.approx(0.75)
    assert b["fake_recall"] == pytest.approx(2 / 6)
    assert b["n"] == 10 and b["n_real"] == 4 and b["n_fake"] == 6
    assert 0 <= b["auc"] <= 1
    assert b["mean_p_fake_fake"] == pytest.approx(np.mean([0.8, 0.1, 0.2, 0.3, 0.4, 0.6]))
    land = b["fake_landing"]
    assert list(land) == list(METHODS)
    assert land["real"] == pytest.approx(0.5) and land["fsgan"] == pytest.approx(2 / 6)
    assert sum(land.values()) == pytest.approx(1.0)
    only_fakes = Ev.cross_block(df[df.label == 1])
    assert np.isnan(only_fakes["auc"]) and np.isnan(only_fakes["real_recall"])


def test_unseen_generator_report_separates_held_out_from_seen_fakes():
    df = table(["real", "fsgan", "fsgan", "fsgan", "wav2lip", "wav2lip"], [0, 1, 1, 1, 1, 1],
               [0.1, 0.2, 0.7, 0.3, 0.9, 0.8], ["real", "real", "faceswap", "real", "wav2lip",
                                                "wav2lip"])
    rep = Ev.unseen_generator_report(df, ["fsgan", "rtvc"])
    assert rep["fsgan"]["n"] == 3
    assert rep["fsgan"]["fake_recall"] == pytest.approx(1 / 3)
    assert rep["fsgan"]["mean_p_fake"] == pytest.approx(0.4)
    assert rep["fsgan"]["landing"]["real"] == pytest.approx(2 / 3)
    assert rep["rtvc"]["n"] == 0 and np.isnan(rep["rtvc"]["fake_recall"])
    assert rep["seen fakes"]["fake_recall"] == 1.0 and rep["seen fakes"]["n"] == 2


def test_find_cross_stores_uses_the_store_naming(tmp_path):
    stores = tmp_path / "stores"
    for name in ("fakeavceleb-tiny", "lavdf-tiny", "dfdm-tiny", "dftimit-paper"):
        (stores / name).mkdir(parents=True)
        (stores / name / "manifest.parquet").write_bytes(b"")
    (stores / "dftimit-tiny").mkdir()                       # no manifest: not a store
    found = Ev.find_cross_stores(stores / "fakeavceleb-tiny")
    assert found == {"lavdf": stores / "lavdf-tiny", "dfdm": stores / "dfdm-tiny"}


# -- a whole evaluation on a toy run ------------------------------------------------------------
class BrightIsFake(nn.Module):
    """det_logit > 0 for bright frames; attribution: bright -> fsgan, dark -> real."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(1, 4)

    def forward(self, frames, mel):
        b = frames.mean(dim=(1, 2, 3, 4))                   # ImageNet-normalised brightness
        logits = torch.zeros(len(b), len(METHODS))
        logits[:, METHODS.index("fsgan")] = b
        logits[:, 0] = -b
        e = self.proj(b[:, None])
        return {"det_logit": 5 * b, "attr_logits": logits, "embedding": e,
                "f_v": e[:, :2], "f_a": e[:, 2:]}


class FakeStore:
    """An opened store (what evaluate_run takes besides a path): manifest, frames, mels."""

    def __init__(self, methods, bright, clip_label=None, dataset="fakeavceleb"):
        n = len(methods)
        self.path = f"stores/{dataset}-toy"
        label = [0 if m == "real" else 1 for m in methods]
        self.manifest = pd.DataFrame({
            "clip_id": np.arange(n), "video_id": [f"v{i}" for i in range(n)],
            "dataset": dataset, "path": [f"{i}.mp4" for i in range(n)],
            "identity": [f"id{i % 5}" for i in range(n)], "method": methods,
            "category": "", "label": label,
            "clip_label": label if clip_label is None else clip_label,
            "method_idx": [METHODS.index(m) if m in METHODS else -1 for m in methods]})
        self.frames = np.where(np.asarray(bright)[:, None, None, None, None], 220, 20) \
            .astype(np.uint8) * np.ones((1, T, 3, HW, HW), np.uint8)
        self.mels = np.zeros((n, N_MELS, S), np.float16)

    def __len__(self):
        return len(self.manifest)


def test_evaluate_run_writes_and_merges_everything(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    methods = ["real", "fsgan", "wav2lip", "real", "fsgan", "wav2lip", "real", "fsgan"]
    bright = [False, True, True, True, True, False, False, True]
    train_store = FakeStore(methods, bright)
    pd.DataFrame({"clip_id": range(8),
                  "split": ["train", "test", "test", "test", "valid", "test", "test", "train"]}
                 ).to_csv(run / "splits.csv", index=False)
    (run / "metrics.json").write_text(json.dumps({"train_seconds": 12.5, "epochs": 2}))
    # LAV-DF: 4 fake videos, but only 2 windows overlap the edit (clip_label)
    lavdf = FakeStore(["real", "real", "lavdf-edit", "lavdf-edit", "lavdf-edit", "lavdf-edit"],
                      [False, False, True, False, False, True],
                      clip_label=[0, 0, 1, 0, 0, 1], dataset="lavdf")
    dfdm = FakeStore(["dfaker"] * 3, [False, False, True], dataset="dfdm")
    cfg = get_config("tiny", {"train.holdout_methods": "wav2lip"})
    loaded = (cfg, BrightIsFake())
    # stores and model passed in; "dftimit" is a path to a folder that is no clip store
    m = Ev.evaluate_run(run, train_store, run=loaded,
                        cross_stores={"lavdf": lavdf, "dfdm": dfdm,
                                      "dftimit": tmp_path / "broken"})
    # test clips 1,2,3,5,6: real(bright)=wrong, fsgan ok, wav2lip(bright) ok, wav2lip(dark), real
    assert m["n_test"] == 5
    assert m["real_recall"] == pytest.approx(0.5) and m["fake_recall"] == pytest.approx(2 / 3)
    assert m["train_seconds"] == 12.5 and m["epochs"] == 2          # trainer's keys kept
    assert m["unseen_generators"]["wav2lip"]["fake_recall"] == pytest.approx(0.5)
    # attribution over seen generators (clips 1 fsgan, 3 real, 6 real) beside its baselines
    assert m["attribution_accuracy"] == pytest.approx(2 / 3)
    assert m["attribution_majority_baseline"] == pytest.approx(2 / 3)
    assert m["attribution_macro_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["attribution_fake_accuracy"] == 1.0
    assert m["attribution_recall"] == {"real": 0.5, "fsgan": 1.0}
    assert set(m["detection_recall"]) == {"real", "fsgan", "wav2lip"}
    assert "per_method_recall" not in m
    assert m["split"]["clips"] == {"test": 5, "train": 2, "valid": 1}
    assert m["split"]["dropped_donor"] == 0
    lav = m["cross_dataset"]["lavdf"]
    assert lav["n"] == 6 and lav["n_fake"] == 2                      # window labels, not video
    assert lav["real_recall"] == 1.0 and lav["fake_recall"] == 1.0 and lav["auc"] == 1.0
    d = m["cross_dataset"]["dfdm"]
    assert d["fake_recall"] == pytest.approx(1 / 3) and d["auc"] is None   # NaN -> null
    assert d["fake_landing"]["real"] == pytest.approx(2 / 3)
    assert "error" in m["cross_dataset"]["dftimit"]

    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == m
    emb = pd.read_parquet(run / "embeddings.parquet")
    assert sorted(emb.clip_id) == [1, 2, 3, 5, 6] and (emb.split == "test").all()
    assert len(emb.embedding[0]) == 4
    cross = pd.read_parquet(run / "embeddings_cross.parquet")
    assert cross.groupby("eval_set").size().to_dict() == {"dfdm": 3, "lavdf": 6}
    lav_rows = cross[cross.eval_set == "lavdf"]       # the video label and the window label
    assert lav_rows.label.sum() == 4 and lav_rows.clip_label.sum() == 2
    cm = pd.read_csv(run / "confusion.csv", index_col=0)
    assert cm.loc["fsgan", "fsgan"] == 1 and cm.loc["real", "fsgan"] == 1
    assert cm.values.sum() == 5
    tab = Ev.cross_table(m)
    assert list(tab.index) == ["test (seen generators)", "lavdf", "dfdm", "dftimit"]

    # a split file that does not belong to the store is refused
    pd.DataFrame({"clip_id": [0, 1], "split": ["test", "test"]}).to_csv(run / "splits.csv",
                                                                       index=False)
    with pytest.raises(ValueError, match="does not cover"):
        Ev.evaluate_run(run, train_store, cross_stores={}, run=loaded)


def test_evaluate_run_open_set_block(tmp_path):
    """The open set of a toy run: rejection scores of the held-out method and a held-out set."""
    run = tmp_path / "run"
    run.mkdir()
    methods = ["real", "fsgan", "wav2lip", "real", "fsgan", "wav2lip", "real", "fsgan", "real",
               "fsgan"]
    bright = [False, True, True, True, True, False, False, True, False, True]
    split = ["train", "test", "test", "test", "valid", "test", "test", "train", "train", "train"]
    pd.DataFrame({"clip_id": range(10), "split": split}).to_csv(run / "splits.csv", index=False)
    lavdf = FakeStore(["real", "real", "lavdf-edit", "lavdf-edit"], [False, False, True, False],
                      dataset="lavdf")
    cfg = get_config("tiny", {"train.holdout_methods": "wav2lip"})
    m = Ev.evaluate_run(run, FakeStore(methods, bright), run=(cfg, BrightIsFake()),
                        cross_stores={"lavdf": lavdf}, open_set=True)
    block = m["open_set"]
    assert block["classes"] == ["real", "fsgan"] and block["recommended"] == "centroid"
    assert block["n_train"] == 4 and block["n_valid"] == 1
    unseen = block["unseen_generators"]["wav2lip"]
    assert (unseen["n_known"], unseen["n_unknown"]) == (3, 2)
    # msp over the trained classes (real: -b, fsgan: +b) is 1 - sigmoid(2|b|): dark frames are
    # nearer 0 after ImageNet normalisation, so their msp is higher. Unknown wav2lip clips
    # (bright, dark) against known (bright, bright, dark): 2 ties, 1 loss, 2 wins, 1 tie
    assert unseen["auroc_baseline"] == pytest.approx(3.5 / 6)
    assert unseen["scores"]["msp"]["auroc"] == unseen["auroc_baseline"]
    assert unseen["auroc"] == unseen["scores"]["centroid"]["auroc"]
    lav = block["cross_dataset"]["lavdf"]
    assert lav["n_unknown"] == 2 and lav["known_elsewhere_rejected"]["n"] == 2
    saved = json.loads((run / "open_set.json").read_text())
    assert saved["thresholds"] == block["thresholds"] and (run / "open_set_bank.npz").exists()
    assert json.loads((run / "metrics.json").read_text())["open_set"] == block
    # off by default (callers that evaluate many runs do not pay for it)
    (run / "metrics.json").unlink()
    assert "open_set" not in Ev.evaluate_run(run, FakeStore(methods, bright),
                                             run=(cfg, BrightIsFake()), cross_stores={})

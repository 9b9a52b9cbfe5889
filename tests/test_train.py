"""Training: the run directory, the metrics in history.csv, the NaN stop.

``tiny_store`` / ``small_config`` build a clip store on disk directly (random frames and mels,
no videos to decode) and a config shrunk to it: 4 frames of 32x32 px, 32 mel bins, narrow
attention layers. One epoch on it takes a few seconds on one CPU thread;
``tests/test_distributed.py`` uses them too.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from amdd_kit.config import METHODS, get_config
from amdd_kit.data.store import ClipStore

SMALL = {"data.n_frames": 4, "data.image_size": 32, "data.n_mels": 32,
         "model.d_model": 32, "model.n_heads": 2, "model.d_embed": 32,
         "model.d_fingerprint": 16, "model.head_hidden": 32, "model.channels_last": False,
         "train.batch_size": 8, "train.epochs": 1, "train.fp16": False,
         "train.cpu_bf16": False}  # float32: the same figures on every CPU


def small_config(**sets):
    """The ``tiny`` config shrunk to the store of :func:`tiny_store`, plus ``sets``."""
    return get_config("tiny", {**SMALL, **sets})


def tiny_store(path: Path, n_identities: int = 20, seed: int = 0) -> ClipStore:
    """A clip store of ``n_identities`` identities with one real and one fake clip each
    (the fakes cycle through the six generators), written the way ``pack`` writes one."""
    cfg = small_config().data
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_identities):
        for method in ("real", METHODS[1 + i % 6]):
            fake = int(method != "real")
            rows.append({"video_id": f"id{i:02d}-{method}", "dataset": "fakeavceleb",
                         "path": f"id{i:02d}/{method}.mp4", "identity": f"id{i:02d}",
                         "method": method, "category": "", "label": fake, "clip_label": fake,
                         "method_idx": METHODS.index(method), "start_s": 0.0})
    m = pd.DataFrame(rows)
    m.insert(0, "clip_id", np.arange(len(m)))
    n = len(m)
    np.save(path / "frames.npy", rng.integers(0, 256, (n, cfg.n_frames, 3, cfg.image_size,
                                                        cfg.image_size), dtype=np.uint8))
    np.save(path / "mels.npy", rng.normal(-5, 2, (n, cfg.n_mels, cfg.mel_frames))
            .astype(np.float16))
    m.to_parquet(path / "manifest.parquet", index=False)
    (path / "data_config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    return ClipStore(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tiny_store(tmp_path_factory.mktemp("store"))


def test_train_writes_the_run_directory(store, tmp_path, one_thread):
    from amdd_kit.train import train
    run = tmp_path / "run"
    train(store, small_config(), run, progress=False)
    for name in ("config.json", "splits.csv", "store.txt", "model.pth", "history.csv",
                 "loss_components.csv", "metrics.json", "embeddings.parquet"):
        assert (run / name).exists(), name
    # fastai's checkpoint of the best epoch duplicates model.pth: removed once that is saved
    assert not (run / "checkpoints").exists(), list((run / "checkpoints").iterdir())
    hist = pd.read_csv(run / "history.csv")
    assert list(hist.columns) == ["epoch", "train_loss", "valid_loss", "bal_acc", "auc",
                                  "attr_acc", "time"]
    assert len(hist) == 1 and 0 <= hist["attr_acc"][0] <= 1 and 0 <= hist["auc"][0] <= 1
    m = json.loads((run / "metrics.json").read_text())
    assert m["processes"] == 1 and m["epochs"] == 1 and m["n_test"] > 0
    comps = pd.read_csv(run / "loss_components.csv")
    assert {"det", "attr", "total"} <= set(comps.columns) and len(comps) == 1


def test_history_metrics_are_the_scores_of_the_validation_predictions(store, tmp_path,
                                                                      one_thread):
    """bal_acc / auc / attr_acc of the progress table equal scikit-learn's scores of the
    validation predictions, each read from its own head of the output dict."""
    from amdd_kit.metrics import attribution_accuracy, balanced_accuracy, safe_auc
    from amdd_kit.train import build_learner, prepare_run
    cfg = small_config()
    split = prepare_run(store, cfg, tmp_path)
    learn = build_learner(store, cfg, split, tmp_path)
    _, bal, auc, attr = learn.validate()
    preds, targs = [], []
    learn.model.eval()
    with torch.no_grad():
        for frames, mel, label, method in learn.dls.valid:
            out = learn.model(frames, mel)
            preds.append((torch.sigmoid(out["det_logit"]), out["attr_logits"].argmax(-1)))
            targs.append((label, method))
    p_fake, pred_idx = (torch.cat(t) for t in zip(*preds))
    label, method = (torch.cat(t) for t in zip(*targs))
    assert len(label) == (split == "valid").sum()
    assert bal == pytest.approx(balanced_accuracy(label, p_fake), abs=1e-6)
    assert auc == pytest.approx(safe_auc(label, p_fake), abs=1e-6)
    assert attr == pytest.approx(attribution_accuracy(method, pred_idx), abs=1e-6)
    assert not math.isnan(auc)


def test_a_nan_loss_stops_training_with_a_message(store, tmp_path, one_thread):
    from amdd_kit.train import build_learner, fit, prepare_run
    cfg = small_config()
    split = prepare_run(store, cfg, tmp_path)
    learn = build_learner(store, cfg, split, tmp_path)
    loss = learn.loss_func
    calls = []

    def nan_on_second_batch(*args):
        out = loss(*args)
        calls.append(1)
        return out * float("nan") if len(calls) == 2 else out

    learn.loss_func = nan_on_second_batch
    learn.loss_func.last = {}
    with pytest.raises(RuntimeError, match="training stopped: the loss became nan"):
        fit(learn, cfg, progress=False)
    assert len(calls) == 2  # stopped at once: no further batch, no validation


def test_cpu_bf16_autocast_runs_the_trunk_in_bfloat16_and_keeps_float32_weights(
        store, tmp_path, one_thread, monkeypatch):
    """With ``train.cpu_bf16`` on a CPU that has native bf16 (forced here, so the test runs on
    any CPU), the convolutions of a training step run in bfloat16 while the weights, their
    gradients and the loss stay float32; with it off, or on a CPU without bf16, float32."""
    from fastai.callback.core import Callback
    from amdd_kit import precision
    from amdd_kit.train import build_learner, prepare_run

    class LossDtype(Callback):
        def __init__(self, seen: list):
            self.seen = seen

        def after_loss(self):
            self.seen.append(self.learn.loss.dtype)

    def conv_dtypes(cfg, native: bool) -> tuple[set, list]:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
        split = prepare_run(store, cfg, tmp_path)
        learn = build_learner(store, cfg, split, tmp_path, device="cpu")
        seen: set = set()
        hook = learn.model.visual.trunk.conv1.register_forward_hook(
            lambda m, i, o: seen.add(o.dtype))
        losses = []
        learn.add_cb(LossDtype(losses))
        learn.fit(1, 1e-3)
        hook.remove()
        assert {p.dtype for p in learn.model.parameters()} == {torch.float32}
        return seen, losses

    seen, losses = conv_dtypes(small_config(**{"train.cpu_bf16": True}), native=True)
    assert seen == {torch.bfloat16} and set(losses) == {torch.float32}
    seen, _ = conv_dtypes(small_config(**{"train.cpu_bf16": False}), native=True)
    assert seen == {torch.float32}
    seen, _ = conv_dtypes(small_config(**{"train.cpu_bf16": True}), native=False)
    assert seen == {torch.float32}
    assert "float32" in precision.describe(small_config(), "cpu")


def test_draws_between_building_and_fitting_do_not_change_the_model(store, tmp_path, one_thread):
    """``fit`` restarts the training draws from the seed: random numbers used after the
    learner is built (a notebook's ``one_batch``, ``lr_find``) leave the trained weights as
    they are, so notebook 03 and ``amdd-kit train`` train the same model."""
    from amdd_kit.train import build_learner, fit, lr_find, prepare_run

    def trained(consume: bool) -> dict:
        cfg = small_config(**{"train.epochs": 2})
        run = tmp_path / f"run{int(consume)}"
        split = prepare_run(store, cfg, run)
        learn = build_learner(store, cfg, split, run)
        if consume:
            learn.dls.one_batch()
            torch.rand(1000)
            np.random.rand(1000)
            with learn.no_bar():
                lr_find(learn, num_it=6, show_plot=False)
        fit(learn, cfg, progress=False)
        return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}

    a, b = trained(False), trained(True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    init = small_config()
    assert init.train.seed == 42  # the draws restart from the config's seed, not a fixed one


def test_lr_find_leaves_the_run_history_as_it_was(store, tmp_path, one_thread):
    """fastai's finder trains through the Learner's callbacks: without care its CSVLogger
    overwrites ``history.csv`` with the finder's few batches."""
    from amdd_kit.train import build_learner, fit, lr_find, prepare_run
    cfg = small_config(**{"train.epochs": 2})
    split = prepare_run(store, cfg, tmp_path)
    learn = build_learner(store, cfg, split, tmp_path)
    fit(learn, cfg, progress=False)
    before = (tmp_path / "history.csv").read_text()
    assert len(before.splitlines()) == 3                 # header + 2 epochs
    with learn.no_bar():
        lr_find(learn, num_it=6, show_plot=False)
    assert (tmp_path / "history.csv").read_text() == before
    assert any(type(cb).__name__ == "CSVLogger" for cb in learn.cbs)  # put back for later fits


def test_precise_bn_recomputes_the_statistics_of_the_final_weights(store, tmp_path, one_thread):
    """After ``fit`` every BatchNorm layer holds the plain average of training-batch statistics
    computed with the final weights (PreciseBN), not a running average over older weights."""
    from amdd_kit.train import build_learner, fit, prepare_run
    cfg = small_config(**{"train.epochs": 2, "train.precise_bn_batches": 4,
                          "train.augment": False, "model.train_frames": 0})
    split = prepare_run(store, cfg, tmp_path)
    learn = build_learner(store, cfg, split, tmp_path)
    fit(learn, cfg, progress=False)
    bn = learn.model.visual.trunk.conv1.norm          # the Haar stem's BatchNorm: fixed inputs
    kept = bn.running_mean.clone()
    model = learn.model.train()
    feats = []
    with torch.no_grad():
        for i, (frames, mel, *_) in enumerate(learn.dls.train):
            if i >= 4:
                break
            x = frames.reshape(-1, *frames.shape[2:])
            feats.append(model.visual.trunk.conv1.features(x).mean(dim=(0, 2, 3)))
    assert all(b.momentum == 0.1 for b in model.modules()
               if isinstance(b, torch.nn.BatchNorm2d))          # restored after recomputing
    # the stem's inputs do not depend on the weights: its population mean is their plain mean
    assert torch.allclose(kept, torch.stack(feats).mean(0), atol=1e-4)
    off = small_config(**{"train.epochs": 2, "train.precise_bn_batches": 0,
                          "train.augment": False, "model.train_frames": 0})
    learn0 = build_learner(store, off, prepare_run(store, off, tmp_path / "off"), tmp_path / "off")
    fit(learn0, off, progress=False)
    assert not torch.allclose(learn0.model.visual.trunk.conv1.norm.running_mean,
                              torch.stack(feats).mean(0), atol=1e-4)
    # scoring the trained model (validate: fastai sends it before_fit too) leaves every weight
    # and statistic alone
    learn.model.eval()
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with learn.no_bar():
        learn.validate()
    assert all(torch.equal(before[k], v) for k, v in learn.model.state_dict().items())


def test_same_seed_same_numbers_another_seed_other_numbers(store, tmp_path, one_thread):
    """A run is a function of its config: the same ``train.seed`` twice gives the same weights
    and history to the bit (augmentation, frame draws, PreciseBN included); another seed moves
    them, so the comparison can tell."""
    from amdd_kit.train import train
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train(store, small_config(**{"train.seed": seed}), tmp_path / name, progress=False)
        runs[name] = (torch.load(tmp_path / name / "model.pth", weights_only=True),
                      pd.read_csv(tmp_path / name / "history.csv").drop(columns="time"))
    (wa, ha), (wb, hb), (wc, hc) = runs["a"], runs["b"], runs["c"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    pd.testing.assert_frame_equal(ha, hb)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)

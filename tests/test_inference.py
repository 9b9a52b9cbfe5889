"""Inference goes through fastai (``Learner.get_preds`` on a DataLoader with the training
``after_batch`` transforms) and gives what the model itself says on correctly prepared inputs."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from amdd_kit.config import get_config
from amdd_kit.inference import embed_store, forward_arrays
from amdd_kit.models import build_model

N_CLIPS, S = 5, 32


def _expected_inputs(frames_u8: np.ndarray, mels_f16: np.ndarray):
    """The model inputs written out by hand: frames / 255 with ImageNet mean/std, each clip's
    log-mel standardised over the whole clip (std + 1e-3)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
    frames = (torch.from_numpy(frames_u8).float() / 255 - mean) / std
    mel = torch.from_numpy(mels_f16).float()
    mel = (mel - mel.mean(dim=(1, 2), keepdim=True)) / (mel.std(dim=(1, 2), keepdim=True) + 1e-3)
    return frames, mel


@pytest.fixture(scope="module", params=["amdd", "cad"])
def clips(request):
    cfg = get_config("tiny", {"data.n_frames": 4, "data.image_size": 32,
                              "model.arch": request.param, "train.cpu_bf16": False})
    torch.manual_seed(0)
    model = build_model(cfg)
    rng = np.random.default_rng(0)
    d = cfg.data
    frames = rng.integers(0, 256, (N_CLIPS, d.n_frames, 3, d.image_size, d.image_size),
                          dtype=np.uint8)
    mels = (rng.standard_normal((N_CLIPS, d.n_mels, S)) * 3 - 6).astype(np.float16)
    with torch.no_grad():
        expected = model.eval()(*_expected_inputs(frames, mels))
    return cfg, model, frames, mels, expected


def _bn_buffers(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if "running_" in k or "num_batches_tracked" in k}


def test_forward_arrays_equals_the_model_on_hand_prepared_inputs(clips):
    cfg, model, frames, mels, expected = clips
    model.train()  # get_preds must put it in eval mode itself
    bn = _bn_buffers(model)
    # batches of 2: three batches, the last one short (nothing dropped, nothing reordered)
    r = forward_arrays(model, frames, mels, cfg, batch_size=2, device="cpu")
    assert not model.training
    for k, v in bn.items():  # scoring never recomputes BatchNorm statistics
        assert torch.equal(model.state_dict()[k], v), k
    p_fake = torch.sigmoid(expected["det_logit"]).numpy()
    np.testing.assert_allclose(r["p_fake"], p_fake, atol=1e-5)
    np.testing.assert_allclose(r["attr_logits"], expected["attr_logits"].numpy(), atol=1e-5)
    np.testing.assert_allclose(r["attr_probs"].sum(1), 1.0, atol=1e-5)
    for k in ("embedding", "f_v", "f_a"):
        assert r[k].shape == (N_CLIPS, expected[k].shape[1])
        np.testing.assert_allclose(r[k], expected[k].numpy(), atol=1e-5)
    np.testing.assert_array_equal(r["trace_v"], expected["trace_logits_v"].argmax(-1).numpy())


def test_embed_store_rows_follow_the_manifest(clips):
    cfg, model, frames, mels, expected = clips
    manifest = pd.DataFrame({"clip_id": np.arange(N_CLIPS) + 100, "method": "real",
                             "label": 0, "clip_label": 0, "method_idx": 0})
    store = SimpleNamespace(manifest=manifest, frames=frames, mels=mels)
    df = embed_store(model, store, cfg, indices=[4, 1, 3], batch_size=2, device="cpu")
    assert df["clip_id"].tolist() == [101, 103, 104]   # sorted indices, one row per clip
    np.testing.assert_allclose(np.stack(df["embedding"]),
                               expected["embedding"].numpy()[[1, 3, 4]], atol=1e-5)
    np.testing.assert_allclose(df["p_fake"],
                               torch.sigmoid(expected["det_logit"]).numpy()[[1, 3, 4]], atol=1e-5)


def test_forward_arrays_of_no_clips_is_empty(clips):
    cfg, model, frames, mels, _ = clips
    r = forward_arrays(model, frames[:0], mels[:0], cfg, device="cpu")
    assert all(len(v) == 0 for v in r.values())


def test_inference_runs_in_the_arithmetic_the_run_trained_with(clips, monkeypatch):
    """On a CPU with native bfloat16 training autocasts to bf16 (``train.cpu_bf16``); so must
    scoring: the same callback, so the same numbers as the model under that autocast."""
    from amdd_kit import precision

    cfg, model, frames, mels, expected = clips
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    cfg = cfg.override({"train.cpu_bf16": True})
    r = forward_arrays(model, frames, mels, cfg, batch_size=N_CLIPS, device="cpu")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model.eval()(*_expected_inputs(frames, mels))
    np.testing.assert_allclose(r["embedding"], bf16["embedding"].float().numpy(), atol=1e-5)
    assert np.abs(r["embedding"] - expected["embedding"].numpy()).max() > 1e-4  # not float32

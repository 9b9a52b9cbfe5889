"""AMDD model: shapes of every module, gradients, a tiny training run, the paper model's step,
and loading pretrained weights from the torch cache."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from amdd_kit.config import AUDIO_TRACES, VISUAL_TRACES, get_config
from amdd_kit.losses import build_loss
from amdd_kit.models import (AMDD, CAD, AudioEncoder, CrossModalFusion, VisualEncoder, build_model,
                             count_parameters, describe_init, weights_file)
from amdd_kit.models.audio import audio_steps
from amdd_kit.models.heads import AttentionPool, FingerprintHead, MLPHead
from amdd_kit.models.visual import HaarStem, haar_matrix

AMDD_KEYS = {"det_logit", "attr_logits", "embedding", "z_v", "z_a", "f_v", "f_a",
             "trace_logits_v", "trace_logits_a"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def cfg():
    return get_config("tiny")


def inputs(cfg, b: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d = cfg.data
    frames = torch.randn(b, d.n_frames, 3, d.image_size, d.image_size, generator=g)
    mel = torch.randn(b, d.n_mels, d.mel_frames, generator=g)
    return frames, mel


LABEL = torch.tensor([0, 0, 1, 1])
METHOD = torch.tensor([0, 0, 2, 5])


def test_visual_encoder_shapes(cfg):
    enc = VisualEncoder(cfg).eval()
    frames, _ = inputs(cfg, b=2)
    seq, pooled = enc(frames)
    assert seq.shape == (2, cfg.data.n_frames, cfg.model.d_model)
    assert pooled.shape == (2, cfg.model.d_model)
    seq, _ = enc(frames[:, :5])                          # shorter clips are fine
    assert seq.shape == (2, 5, cfg.model.d_model)
    with pytest.raises(ValueError, match="n_frames"):
        enc(torch.cat([frames, frames], dim=1))
    with pytest.raises(ValueError, match=r"\[B,T,3,H,W\]"):
        enc(frames[:, 0])
    assert enc.gradcam_layer is enc.trunk.layer4


def test_training_sees_a_sparse_ordered_subset_of_frames_and_evaluation_all(cfg):
    """``model.train_frames``: in training the trunk gets ``train_frames`` frames of each clip,
    in their order, each with its own positional embedding; in evaluation all ``T``."""
    assert 0 < cfg.model.train_frames < cfg.data.n_frames
    enc = VisualEncoder(cfg)
    T, k = cfg.data.n_frames, cfg.model.train_frames
    frames = torch.arange(T, dtype=torch.float32).view(1, T, 1, 1, 1).expand(2, T, 3, 8, 8)
    seen = []
    enc.frame_features = lambda f: seen.append(f[0, :, 0, 0, 0].tolist()) or \
        torch.zeros(f.shape[0], f.shape[1], enc.proj.in_features)
    pos_used = []
    hook = enc.temporal.register_forward_pre_hook(lambda m, a: pos_used.append(a[0][0]))
    torch.manual_seed(0)
    for _ in range(20):
        seq, _ = enc.train()(frames)
        assert seq.shape == (2, k, cfg.model.d_model)
    picks = [tuple(int(i) for i in s) for s in seen]
    assert all(len(p) == k and list(p) == sorted(set(p)) for p in picks)  # ordered, distinct
    assert len(set(picks)) > 5                                          # drawn anew each step
    # the kept frames carry their own positions: the input to the attention is proj(0) + pos
    expected = enc.proj(torch.zeros(enc.proj.in_features)) + enc.pos[0, list(picks[-1])]
    torch.testing.assert_close(pos_used[-1], expected)
    seq, _ = enc.eval()(frames)
    hook.remove()
    assert seq.shape == (2, T, cfg.model.d_model) and seen[-1] == list(range(T))
    assert VisualEncoder(get_config("paper", {"model.pretrained": False})).train_frames == 0


def test_audio_encoder_shapes(cfg):
    enc = AudioEncoder(cfg)
    _, mel = inputs(cfg, b=3)
    seq, pooled = enc(mel)
    assert cfg.data.mel_frames == 64 and audio_steps(64) == 4
    assert seq.shape == (3, 4, cfg.model.d_model)         # S' = S/16 >= 4 (max-pool over frequency only)
    assert pooled.shape == (3, cfg.model.d_model)
    assert enc.trunk.conv1.in_channels == 1
    with pytest.raises(ValueError, match=r"\[B,n_mels,S\]"):
        enc(mel[0])


def test_fusion_and_heads_shapes(cfg):
    m = cfg.model
    out = CrossModalFusion(cfg)(torch.randn(2, 8, m.d_model), torch.randn(2, 4, m.d_model))
    assert out["embedding"].shape == (2, m.d_embed)
    assert out["v"].shape == (2, 8, m.d_model) and out["a"].shape == (2, 4, m.d_model)
    assert out["sync_v"].shape == (2, m.d_model) and out["sync_a"].shape == (2, m.d_model)
    pool = AttentionPool(16)
    x = torch.randn(3, 5, 16)
    assert pool(x).shape == (3, 16)
    assert torch.allclose(pool.last_weights.sum(-1), torch.ones(3))
    assert MLPHead(16, 32, 7)(torch.randn(3, 16)).shape == (3, 7)
    f = FingerprintHead(16, 8)(torch.randn(3, 16))
    assert f.shape == (3, 8) and torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_amdd_forward_contract(cfg):
    model = build_model(cfg)
    assert isinstance(model, AMDD) and not isinstance(model, CAD)
    out = model(*inputs(cfg))
    assert type(out) is dict and set(out) == AMDD_KEYS
    m = cfg.model
    shapes = {"det_logit": (4,), "attr_logits": (4, m.n_classes), "embedding": (4, m.d_embed),
              "z_v": (4, m.d_model), "z_a": (4, m.d_model),
              "f_v": (4, m.d_fingerprint), "f_a": (4, m.d_fingerprint),
              "trace_logits_v": (4, len(VISUAL_TRACES)), "trace_logits_a": (4, len(AUDIO_TRACES))}
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    for k in ("f_v", "f_a"):
        assert torch.allclose(out[k].norm(dim=-1), torch.ones(4), atol=1e-5)
    assert model.gradcam_layer is model.visual.trunk.layer4


def test_gradients_reach_every_parameter(cfg):
    torch.manual_seed(0)
    model = build_model(cfg)
    out = model(*inputs(cfg))
    build_loss(cfg)(out, LABEL, METHOD).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad


def test_tiny_training_reduces_the_loss():
    """A few optimiser steps on one batch (tiny model, 4 frames of 32x32 to stay quick)."""
    cfg = get_config("tiny", {"data.n_frames": 4, "data.image_size": 32})
    torch.manual_seed(0)
    model = build_model(cfg)
    loss_fn = build_loss(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames, mel = inputs(cfg)
    values = []
    for _ in range(5):
        loss = loss_fn(model(frames, mel), LABEL, METHOD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert all(torch.isfinite(torch.tensor(values)))
    assert values[-1] < 0.8 * values[0], values
    model.eval()
    with torch.no_grad():                               # eval mode is deterministic
        a, b = model(frames, mel), model(frames, mel)
    assert torch.equal(a["det_logit"], b["det_logit"])


def test_paper_config_one_training_step_on_cpu():
    """The full model (ResNet50 per frame, T=16, 224x224, 80 mels), one optimiser step."""
    cfg = get_config("paper", {"model.pretrained": False})
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.visual.backbone == "resnet50" and model.visual.trunk.fc.__class__.__name__ == "Identity"
    loss_fn = build_loss(cfg)
    frames, mel = inputs(cfg, b=2)
    assert frames.shape == (2, 16, 3, 224, 224) and mel.shape == (2, 80, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    before = model.det_head.net[-1].weight.detach().clone()
    out = model(frames, mel)
    assert out["embedding"].shape == (2, 512) and out["f_v"].shape == (2, 128)
    assert out["attr_logits"].shape == (2, 7)
    loss = loss_fn(out, torch.tensor([0, 1]), torch.tensor([0, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.visual.trunk.conv1.weight.grad is not None
    opt.step()
    assert not torch.equal(before, model.det_head.net[-1].weight)


def test_build_model_and_helpers(cfg):
    model = build_model(cfg)
    n = count_parameters(model)
    assert n == sum(p.numel() for p in model.parameters()) and n > 1_000_000
    model.audio.requires_grad_(False)
    assert count_parameters(model) == n - sum(p.numel() for p in model.audio.parameters())
    assert count_parameters(model, trainable_only=False) == n
    assert describe_init(model) == "visual resnet18: random init; audio resnet18: random init"
    with pytest.raises(ValueError, match="arch"):
        build_model(get_config("tiny", {"model.arch": "transformer"}))
    with pytest.raises(ValueError, match="backbone"):
        build_model(get_config("tiny", {"model.visual_backbone": "vgg16"}))


def test_pretrained_weights_load_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = weights_file("resnet18")
    assert target == tmp_path / "hub" / "checkpoints" / target.name
    assert target.name.startswith("resnet18-") and target.suffix == ".pth"
    torch.manual_seed(123)
    state = torchvision.models.resnet18(weights=None).state_dict()   # random, right keys
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    model = build_model(get_config("tiny", {"model.pretrained": True,
                                            "model.visual_stem": "resnet"}))
    assert torch.equal(model.visual.trunk.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.visual.trunk.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    rgb_mean = state["conv1.weight"].mean(dim=1, keepdim=True)
    assert torch.allclose(model.audio.trunk.conv1.weight, rgb_mean)
    assert torch.equal(model.audio.trunk.layer1[0].bn1.running_var, state["layer1.0.bn1.running_var"])
    assert "ImageNet" in describe_init(model) and "random" not in describe_init(model)
    # tiny's own stems (Haar bands or a plain pixel unshuffle, then a 3x3 conv) have no
    # ImageNet weights: the rest loads, and the description says so
    haar = build_model(get_config("tiny", {"model.pretrained": True}))
    assert isinstance(haar.visual.trunk.conv1, HaarStem)
    assert torch.equal(haar.visual.trunk.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert "haar stem starts from scratch" in haar.visual.init
    s2d = build_model(get_config("tiny", {"model.pretrained": True,
                                          "model.visual_stem": "space_to_depth"}))
    assert isinstance(s2d.visual.trunk.conv1[0], torch.nn.PixelUnshuffle)
    assert "space_to_depth stem starts from scratch" in s2d.visual.init


def test_haar_stem_is_lossless_and_puts_a_checkerboard_in_hh_alone():
    """The wavelet stem's bands are an orthonormal re-arrangement of the pixels (nothing is
    lost before the first learned conv), a 2-px checkerboard lands in the HH bands only, and a
    smooth image has almost nothing there (so the per-band BatchNorm lifts the traces)."""
    torch.manual_seed(0)
    stem = HaarStem(64)
    x = torch.rand(2, 3, 16, 16)
    bands = stem.bands(x)                                            # [2,12,8,8]
    assert bands.shape == (2, 12, 8, 8)
    w = haar_matrix(3)
    assert torch.allclose(w @ w.t(), torch.eye(12), atol=1e-6)
    back = torch.nn.functional.pixel_shuffle(torch.einsum("ij,bjhw->bihw", w.t(), bands), 2)
    assert torch.allclose(back, x, atol=1e-6)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    checker = ((xx + yy) % 2 * 2 - 1).float().expand(1, 3, 16, 16)
    cb = stem.bands(checker).abs().mean(dim=(0, 2, 3)).view(3, 4)   # colour x (LL,LH,HL,HH)
    assert torch.all(cb[:, 3] > 0.99) and torch.all(cb[:, :3] < 1e-6)
    smooth = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    sb = stem.bands(smooth).abs().mean(dim=(0, 2, 3)).view(3, 4)
    assert torch.all(sb[:, 3] < 1e-6) and torch.all(sb[:, 0] > 10 * sb[:, 2])
    assert stem(x).shape == (2, 64, 8, 8)


def test_haar_stem_features_see_a_checkerboard_in_either_phase():
    """A one-pixel shift flips a 2-px checkerboard's HH sign (where a crop starts is arbitrary);
    the stem's detail magnitudes are the same for both phases, and differ from a smooth image."""
    stem = HaarStem(64)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    face = torch.linspace(0.2, 0.8, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    checker = 0.05 * ((xx + yy) % 2 * 2 - 1).float()
    a, b = stem.features(face + checker), stem.features(face - checker)     # [1,21,8,8]
    assert a.shape == (1, 21, 8, 8)
    hh = [3, 7, 11]                                                      # signed HH per colour
    assert torch.allclose(a[:, hh], -b[:, hh], atol=1e-6) and a[:, hh].abs().min() > 0.09
    assert torch.allclose(a[:, 12:], b[:, 12:], atol=1e-6)               # |LH|,|HL|,|HH|
    assert torch.allclose(stem.features(torch.roll(face + checker, 1, dims=-2))[:, 12:, 1:-1],
                          a[:, 12:, 1:-1], atol=1e-5)
    assert stem.features(face)[:, 12:].view(3, 3, 8, 8)[:, 2].abs().max() < 1e-6
    assert stem(face + checker).shape == (1, 64, 8, 8)


def test_pretrained_offline_names_the_file_to_provide(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError) as err:
        build_model(get_config("tiny", {"model.pretrained": True}))
    msg = str(err.value)
    assert str(weights_file("resnet18")) in msg and "pretrained=False" in msg


class _RandomClips(torch.utils.data.Dataset):
    """Random clips shaped like the loaders' batches: (frames, mel, label, method_idx)."""

    n_inp = 2

    def __init__(self, n: int, cfg):
        g = torch.Generator().manual_seed(n)
        d = cfg.data
        self.frames = torch.randn(n, d.n_frames, 3, d.image_size, d.image_size, generator=g)
        self.mels = torch.randn(n, d.n_mels, d.mel_frames, generator=g)
        self.labels = torch.arange(n) % 2
        self.methods = torch.where(self.labels == 0, 0, torch.arange(n) % 6 + 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.frames[i], self.mels[i], self.labels[i], self.methods[i]


@pytest.mark.parametrize("arch", ["amdd", "cad"])
def test_fastai_learner_fits_and_predicts(arch):
    """The loss/model protocol fastai relies on: dict outputs, ``reduction``, ``activation``."""
    from fastai.callback.progress import ProgressCallback
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

    cfg = get_config("tiny", {"data.n_frames": 4, "data.image_size": 32, "model.arch": arch})
    dls = DataLoaders.from_dsets(_RandomClips(8, cfg), _RandomClips(6, cfg), bs=4)
    learn = Learner(dls, build_model(cfg), loss_func=build_loss(cfg, 0.5))
    learn.remove_cb(ProgressCallback)
    with learn.no_logging():
        learn.fit(1, 1e-3)
    assert all(torch.isfinite(torch.tensor(learn.recorder.losses)))
    assert set(learn.loss_func.last) >= {"det", "attr", "total"}
    # dict predictions cannot be re-ordered by fastai: reorder=False (valid is not shuffled)
    preds, targs, per_clip = learn.get_preds(with_loss=True, reorder=False)
    assert preds["det_logit"].shape == (6,) and preds["attr_logits"].shape == (6, 7)
    assert per_clip.shape == (6,) and torch.isfinite(per_clip).all()
    assert learn.loss_func.reduction == "mean"


def test_load_run_names_retraining_when_the_weights_do_not_fit(tmp_path):
    """A run whose layers differ from this version's model (e.g. trained before the Haar stem
    gained its magnitude channels) is refused with the next step, not a size-mismatch dump."""
    from amdd_kit.inference import load_run

    cfg = get_config("tiny")
    cfg.to_json(tmp_path / "config.json")
    state = build_model(cfg).state_dict()
    state["visual.trunk.conv1.norm.weight"] = torch.ones(12)  # the old 12-band stem
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(RuntimeError) as err:
        load_run(tmp_path, "cpu")
    assert "older version" in str(err.value) and "amdd-kit train" in str(err.value)
    torch.save(build_model(cfg).state_dict(), tmp_path / "model.pth")
    assert load_run(tmp_path, "cpu")[1].training is False

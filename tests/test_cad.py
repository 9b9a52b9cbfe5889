"""CAD (comparison method): output contract, gradients, switchable loss terms, stop-gradient."""
from __future__ import annotations

import math

import pytest
import torch

from amdd_kit import losses
from amdd_kit.config import AUDIO_TRACES, METHODS, VISUAL_TRACES, get_config
from amdd_kit.losses import build_loss
from amdd_kit.models import CAD, build_model

CAD_EXTRA = {"det_logit_v", "det_logit_a", "trace_logits_v", "trace_logits_a", "sync_v", "sync_a"}
AMDD_KEYS = {"det_logit", "attr_logits", "embedding", "z_v", "z_a", "f_v", "f_a"}
LABEL = torch.tensor([0, 0, 1, 1])
METHOD = torch.tensor([0, 0, 3, -1])


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def cad_cfg(**loss):
    # small frames keep these tests quick; the architecture is the tiny one
    over = {"model.arch": "cad", "data.n_frames": 4, "data.image_size": 32}
    over.update({f"loss.{k}": v for k, v in loss.items()})
    return get_config("tiny", over)


def inputs(cfg, b: int = 4):
    g = torch.Generator().manual_seed(0)
    d = cfg.data
    return (torch.randn(b, d.n_frames, 3, d.image_size, d.image_size, generator=g),
            torch.randn(b, d.n_mels, d.mel_frames, generator=g))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(cad_cfg())


def test_cad_output_contract(model):
    cfg = cad_cfg()
    assert isinstance(model, CAD)
    out = model(*inputs(cfg))
    assert type(out) is dict and set(out) == AMDD_KEYS | CAD_EXTRA
    m = cfg.model
    for k in ("det_logit", "det_logit_v", "det_logit_a"):
        assert out[k].shape == (4,)
    assert out["attr_logits"].shape == (4, m.n_classes)
    assert out["trace_logits_v"].shape == (4, len(VISUAL_TRACES))
    assert out["trace_logits_a"].shape == (4, len(AUDIO_TRACES))
    for k in ("z_v", "z_a", "sync_v", "sync_a"):
        assert out[k].shape == (4, m.d_model)
    assert out["embedding"].shape == (4, m.d_embed)
    for k in ("f_v", "f_a"):
        assert out[k].shape == (4, m.d_fingerprint)
        assert torch.allclose(out[k].norm(dim=-1), torch.ones(4), atol=1e-5)
    assert model.gradcam_layer is model.visual.trunk.layer4


def test_cad_gradients_reach_every_parameter(model):
    model.zero_grad(set_to_none=True)
    loss_fn = build_loss(cad_cfg())
    loss_fn(model(*inputs(cad_cfg())), LABEL, METHOD).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_cad_loss_terms_and_total(model):
    loss_fn = build_loss(cad_cfg(w_cad_feat=0.2))
    with torch.no_grad():
        out = model(*inputs(cad_cfg()))
    total = loss_fn(out, LABEL, METHOD)
    last, w = loss_fn.last, loss_fn.weights
    assert loss_fn.computed == {"det", "attr", "teacher", "kl", "distill", "feat"}
    # CAD alone: AMDD's own regularisers are off unless asked for
    assert last["con"] == last["cmffc"] == last["cent"] == 0.0
    expected = sum(w[k] * last[k] for k in ("det", "attr", "teacher", "kl", "distill", "feat"))
    assert math.isclose(total.item(), expected, rel_tol=1e-5)
    assert all(last[k] > 0 for k in ("teacher", "kl", "distill", "feat"))
    with_amdd = build_loss(cad_cfg(cad_amdd_terms=True))
    with_amdd(out, LABEL, METHOD)
    assert {"con", "cmffc", "cent"} <= with_amdd.computed


@pytest.mark.parametrize("term,weight,fn", [
    ("kl", "w_cad_kl", "cad_kl"),
    ("distill", "w_cad_distill", "cad_distill"),
    ("feat", "w_cad_feat", "cad_feature_distill"),
])
def test_cad_terms_switch_off(model, monkeypatch, term, weight, fn):
    with torch.no_grad():
        out = model(*inputs(cad_cfg()))
    on = build_loss(cad_cfg(**{weight: 0.3}))
    total_on = on(out, LABEL, METHOD).item()
    assert term in on.computed and on.last[term] > 0

    def boom(*a, **k):
        raise AssertionError(f"{fn} computed although its weight is 0")
    monkeypatch.setattr(losses, fn, boom)
    off = build_loss(cad_cfg(**{weight: 0.0}))
    total_off = off(out, LABEL, METHOD).item()
    assert term not in off.computed and off.last[term] == 0.0
    assert total_off == pytest.approx(total_on - 0.3 * on.last[term], rel=1e-5)


def test_teacher_supervision_switches_off(model):
    """With the teacher, KL and distillation weights at 0, teacher outputs do not matter."""
    with torch.no_grad():
        out = model(*inputs(cad_cfg()))
    loss_fn = build_loss(cad_cfg(w_cad_teacher=0.0, w_cad_kl=0.0, w_cad_distill=0.0))
    before = loss_fn(out, LABEL, METHOD).item()
    assert loss_fn.computed == {"det", "attr"} and loss_fn.last["teacher"] == 0.0
    changed = dict(out, det_logit_v=out["det_logit_v"] + 5.0, trace_logits_a=-out["trace_logits_a"])
    assert loss_fn(changed, LABEL, METHOD).item() == pytest.approx(before, rel=1e-6)
    teacher_on = build_loss(cad_cfg(w_cad_kl=0.0, w_cad_distill=0.0))
    assert teacher_on(changed, LABEL, METHOD).item() != pytest.approx(
        teacher_on(out, LABEL, METHOD).item())


def test_distillation_does_not_train_the_teachers(model):
    """Stop-gradient: with only the distillation term on, no gradient reaches a teacher head."""
    model.zero_grad(set_to_none=True)
    loss_fn = build_loss(cad_cfg(w_det=0.0, w_attr=0.0, w_cad_teacher=0.0, w_cad_kl=0.0,
                                 w_cad_distill=1.0))
    loss = loss_fn(model(*inputs(cad_cfg())), LABEL, METHOD)
    assert loss_fn.computed == {"distill"} and loss.item() > 0
    loss.backward()
    for name in ("teacher_v", "teacher_a"):
        for p in getattr(model, name).parameters():
            assert p.grad is None or torch.all(p.grad == 0), name
    student = model.det_head.net[-1].weight.grad
    assert student is not None and student.abs().sum() > 0
    assert model.attr_head.net[-1].weight.grad.abs().sum() > 0


def test_cad_under_bf16_autocast(model):
    loss_fn = build_loss(cad_cfg())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(*inputs(cad_cfg()))
        total = loss_fn(out, torch.ones(4, dtype=torch.long), torch.full((4,), -1))
    assert torch.isfinite(total) and all(math.isfinite(v) for v in loss_fn.last.values())


def test_kl_agreement_only_on_real_clips(model):
    """Eq. 7 is meant for in-sync clips: changing a fake clip's teachers leaves it unchanged."""
    with torch.no_grad():
        out = model(*inputs(cad_cfg()))
    kl_only = build_loss(cad_cfg(w_det=0.0, w_attr=0.0, w_cad_teacher=0.0, w_cad_distill=0.0))
    base = kl_only(out, LABEL, METHOD).item()
    fake_rows = LABEL == 1
    moved = dict(out, det_logit_v=torch.where(fake_rows, out["det_logit_v"] + 7.0,
                                              out["det_logit_v"]))
    assert kl_only(moved, LABEL, METHOD).item() == pytest.approx(base, rel=1e-6)
    real_moved = dict(out, det_logit_v=torch.where(~fake_rows, out["det_logit_v"] + 7.0,
                                                   out["det_logit_v"]))
    assert kl_only(real_moved, LABEL, METHOD).item() > base + 0.1


def test_teachers_learn_their_own_modality():
    """The visual teacher is not asked to detect a cloned voice: for an rtvc clip (real video,
    fake audio) a visual teacher saying 'real' costs less than one saying 'fake'; the audio
    teacher the other way round."""
    cfg = cad_cfg(w_det=0.0, w_attr=0.0, w_cad_kl=0.0, w_cad_distill=0.0)
    loss_fn = build_loss(cfg)
    rtvc = torch.tensor([METHODS.index("rtvc")])
    label = torch.tensor([1])
    zero_v = torch.zeros(1, len(VISUAL_TRACES))
    zero_a = torch.zeros(1, len(AUDIO_TRACES))

    def cost(det_v: float, det_a: float) -> float:
        out = {"det_logit": torch.zeros(1), "attr_logits": torch.zeros(1, len(METHODS)),
               "det_logit_v": torch.tensor([det_v]), "det_logit_a": torch.tensor([det_a]),
               "trace_logits_v": zero_v, "trace_logits_a": zero_a,
               "embedding": torch.zeros(1, 8), "z_v": torch.zeros(1, 8), "z_a": torch.zeros(1, 8),
               "f_v": torch.zeros(1, 8), "f_a": torch.zeros(1, 8),
               "sync_v": torch.zeros(1, 8), "sync_a": torch.zeros(1, 8)}
        return loss_fn(out, label, rtvc).item()

    assert cost(-4.0, 4.0) < cost(4.0, 4.0) - 0.1     # visual teacher: rtvc video is real
    assert cost(-4.0, 4.0) < cost(-4.0, -4.0) - 0.1   # audio teacher: rtvc audio is fake

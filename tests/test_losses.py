"""Property tests of the loss terms (amdd_kit.losses): each checks behaviour, not stored values."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from amdd_kit import losses
from amdd_kit.config import AUDIO_TRACES, METHOD_TRACES, METHODS, VISUAL_TRACES, get_config
from amdd_kit.losses import (AMDDLoss, attribution_ce, binary_focal_loss, build_loss, cad_distill,
                             cad_kl, centroid_loss, cmffc_loss, info_nce,
                             method_log_probs_from_traces, trace_targets)
from amdd_kit.models.heads import PrototypeClassifier

B, C, D, DF = 6, 7, 16, 8


def fake_out(seed: int = 0, b: int = B, requires_grad: bool = True) -> dict[str, torch.Tensor]:
    """A random model-output dict with the AMDD keys (leaf tensors, so grads can be checked)."""
    g = torch.Generator().manual_seed(seed)
    out = {
        "det_logit": torch.randn(b, generator=g),
        "attr_logits": torch.randn(b, C, generator=g),
        "embedding": torch.randn(b, D, generator=g),
        "z_v": torch.randn(b, D, generator=g),
        "z_a": torch.randn(b, D, generator=g),
        "trace_logits_v": torch.randn(b, len(VISUAL_TRACES), generator=g),
        "trace_logits_a": torch.randn(b, len(AUDIO_TRACES), generator=g),
    }
    return {k: v.requires_grad_(requires_grad) for k, v in out.items()}


LABEL = torch.tensor([0, 0, 0, 1, 1, 1])
METHOD = torch.tensor([0, 0, 0, 2, 3, -1])


def rotation(dim: int, angle: float) -> torch.Tensor:
    """Rotation by ``angle`` in the plane of the first two axes."""
    r = torch.eye(dim)
    c, s = math.cos(angle), math.sin(angle)
    r[0, 0], r[0, 1], r[1, 0], r[1, 1] = c, -s, s, c
    return r


# -- Eq. 1 focal ------------------------------------------------------------------------------
def test_focal_gamma0_no_alpha_is_bce():
    logit = torch.randn(50) * 3
    target = (torch.rand(50) > 0.5).float()
    ours = binary_focal_loss(logit, target, gamma=0.0, alpha=None)
    assert torch.allclose(ours, F.binary_cross_entropy_with_logits(logit, target), atol=1e-6)


def test_focal_matches_its_formula():
    logit = torch.linspace(-4, 4, 9)
    for y in (0.0, 1.0):
        target = torch.full_like(logit, y)
        p_t = torch.sigmoid(logit) if y == 1.0 else 1 - torch.sigmoid(logit)
        for gamma, alpha in ((2.0, None), (1.5, 0.3)):
            a_t = 1.0 if alpha is None else (alpha if y == 1.0 else 1 - alpha)
            expected = -a_t * (1 - p_t) ** gamma * torch.log(p_t)
            ours = binary_focal_loss(logit, target, gamma, alpha, reduction="none")
            assert torch.allclose(ours, expected, atol=1e-5)


def test_focal_down_weights_easy_examples_and_alpha_balances():
    target = torch.tensor([1.0, 1.0, 0.0, 0.0])
    logit = torch.tensor([4.0, -1.0, -4.0, 1.0])        # easy, hard, easy, hard
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    fl = binary_focal_loss(logit, target, gamma=2.0, reduction="none")
    assert (fl < bce).all()
    # easy examples lose far more of their weight than hard ones
    assert (fl[0] / bce[0]) < 0.01 < (fl[1] / bce[1])
    # alpha = 1: only fake clips count; alpha = 0: only real clips
    a1 = binary_focal_loss(logit, target, gamma=2.0, alpha=1.0, reduction="none")
    a0 = binary_focal_loss(logit, target, gamma=2.0, alpha=0.0, reduction="none")
    assert torch.all(a1[2:] == 0) and torch.all(a1[:2] > 0)
    assert torch.all(a0[:2] == 0) and torch.all(a0[2:] > 0)


# -- Eq. 2 attribution ------------------------------------------------------------------------
def test_attribution_ce_ignores_unknown_methods():
    logits = torch.randn(5, C)
    idx = torch.tensor([0, 3, -1, 6, -1])
    keep = idx != -1
    expected = F.cross_entropy(logits[keep], idx[keep])
    assert torch.allclose(attribution_ce(logits, idx), expected, atol=1e-6)


def test_attribution_ce_all_unknown_is_zero_with_graph():
    logits = torch.randn(3, C, requires_grad=True)
    loss = attribution_ce(logits, torch.full((3,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


def test_attribution_ce_rejects_out_of_range_index():
    with pytest.raises(ValueError, match="method_idx"):
        attribution_ce(torch.randn(2, C), torch.tensor([0, C]))


# -- Eq. 3 InfoNCE ----------------------------------------------------------------------------
def test_info_nce_prefers_in_sync_pairs():
    z = F.normalize(torch.randn(8, D), dim=-1)
    aligned = info_nce(z, z + 0.01 * torch.randn(8, D), temperature=0.1)
    shuffled = info_nce(z, z.roll(1, dims=0), temperature=0.1)
    assert aligned < 0.1 < shuffled
    # symmetric in the two modalities
    za = torch.randn(8, D)
    assert torch.allclose(info_nce(z, za), info_nce(za, z), atol=1e-5)


def test_info_nce_uses_only_masked_rows_and_is_zero_below_two():
    zv, za = torch.randn(6, D), torch.randn(6, D)
    mask = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    assert torch.allclose(info_nce(zv, za, mask=mask), info_nce(zv[:3], za[:3]), atol=1e-6)
    zv.requires_grad_(True)
    one = info_nce(zv, za, mask=torch.tensor([1, 0, 0, 0, 0, 0], dtype=torch.bool))
    assert one.item() == 0.0 and one.requires_grad
    one.backward()
    assert zv.grad is not None


# -- Eq. 4 CMFFC ------------------------------------------------------------------------------
ALL = torch.arange(len(METHODS)).repeat(3)              # every generator class, 3 clips each


def trace_heads(seed: int = 5) -> tuple[PrototypeClassifier, PrototypeClassifier]:
    torch.manual_seed(seed)
    return PrototypeClassifier(DF, len(VISUAL_TRACES)), PrototypeClassifier(DF, len(AUDIO_TRACES))


def informative(head_v, head_a, method_idx):
    """Fingerprints that point at their own trace's prototype (class-informative)."""
    y_v, y_a = trace_targets(method_idx)
    return head_v.prototypes.detach()[y_v], head_a.prototypes.detach()[y_a]


def agreeing_attr(method_idx, strength: float = 8.0) -> torch.Tensor:
    return strength * F.one_hot(method_idx, len(METHODS)).float()


def test_trace_targets_follow_the_trace_table():
    y_v, y_a = trace_targets(torch.tensor([*range(len(METHODS)), -1]))
    for i, m in enumerate(METHODS):
        assert (VISUAL_TRACES[y_v[i]], AUDIO_TRACES[y_a[i]]) == METHOD_TRACES[m]
    assert y_v[-1] == -1 and y_a[-1] == -1
    # the trace pairs identify the generator: the product of one-hot posteriors names it
    lq = method_log_probs_from_traces(20 * F.one_hot(y_v[:-1], len(VISUAL_TRACES)).float(),
                                      20 * F.one_hot(y_a[:-1], len(AUDIO_TRACES)).float())
    assert torch.equal(lq.argmax(-1), torch.arange(len(METHODS)))


def test_cmffc_collapse_costs_clearly_more_than_informative_fingerprints():
    """The property the first reading lacked: constant (collapsed) fingerprints cannot win."""
    head_v, head_a = trace_heads()
    attr = agreeing_attr(ALL)
    f_v, f_a = informative(head_v, head_a, ALL)
    good = cmffc_loss(head_v(f_v), head_a(f_a), attr, ALL).item()
    for u in (F.normalize(torch.randn(DF), dim=0), head_v.prototypes.detach()[0]):
        const_v = u.expand(len(ALL), DF)
        const_a = torch.zeros(DF).index_fill(0, torch.tensor([0]), 1.0).expand(len(ALL), DF)
        collapsed = cmffc_loss(head_v(const_v), head_a(const_a), attr, ALL).item()
        # a collapse pays at least the entropy of the trace labels in the identification term
        assert collapsed > good + 0.5, (collapsed, good)
    # both modalities collapsed onto one shared vector (the old optimum) is no better
    shared = F.normalize(torch.randn(DF), dim=0).expand(len(ALL), DF)
    assert cmffc_loss(head_v(shared), head_a(shared), attr, ALL).item() > good + 0.5


def test_cmffc_prefers_an_attribution_that_agrees_with_both_traces():
    head_v, head_a = trace_heads()
    f_v, f_a = informative(head_v, head_a, ALL)
    gv, ga = 5 * head_v(f_v), 5 * head_a(f_a)           # confident, correct traces
    agree = cmffc_loss(gv, ga, agreeing_attr(ALL), ALL).item()
    wrong = cmffc_loss(gv, ga, agreeing_attr((ALL + 1) % len(METHODS)), ALL).item()
    assert wrong > agree + 1.0, (agree, wrong)


def test_cmffc_is_well_posed_when_one_modality_is_untouched():
    """real, faceswap and fsgan share the real audio: their audio target is the same trace
    ('none'), so identical audio fingerprints are right, not a contradiction."""
    head_v, head_a = trace_heads()
    m = torch.tensor([METHODS.index(x) for x in ("real", "faceswap", "fsgan")] * 2)
    f_v, _ = informative(head_v, head_a, m)
    same_audio = head_a.prototypes.detach()[0].expand(len(m), DF)     # the 'none' prototype
    rtvc_audio = head_a.prototypes.detach()[1].expand(len(m), DF)
    attr = agreeing_attr(m)
    ok = cmffc_loss(5 * head_v(f_v), 5 * head_a(same_audio), attr, m).item()
    bad = cmffc_loss(5 * head_v(f_v), 5 * head_a(rtvc_audio), attr, m).item()
    assert bad > ok + 1.0, (ok, bad)


def test_cmffc_falls_as_fingerprints_become_informative():
    head_v, head_a = trace_heads()
    f_v, f_a = informative(head_v, head_a, ALL)
    g = torch.Generator().manual_seed(7)
    noise_v, noise_a = torch.randn(len(ALL), DF, generator=g), torch.randn(len(ALL), DF, generator=g)
    values = [cmffc_loss(head_v(F.normalize(a * f_v + (1 - a) * noise_v, dim=-1)),
                         head_a(F.normalize(a * f_a + (1 - a) * noise_a, dim=-1)),
                         agreeing_attr(ALL), ALL).item() for a in (0.0, 0.5, 1.0)]
    assert values[0] > values[1] > values[2], values


def test_cmffc_ignores_unknown_classes():
    head_v, head_a = trace_heads()
    f_v, f_a = informative(head_v, head_a, ALL)
    base = cmffc_loss(head_v(f_v), head_a(f_a), agreeing_attr(ALL), ALL)
    m = torch.cat([ALL, torch.tensor([-1])])
    gv = torch.cat([head_v(f_v), -10 * torch.ones(1, len(VISUAL_TRACES))])
    ga = torch.cat([head_a(f_a), torch.randn(1, len(AUDIO_TRACES))])
    attr = torch.cat([agreeing_attr(ALL), torch.randn(1, len(METHODS))])
    assert cmffc_loss(gv, ga, attr, m).item() == pytest.approx(base.item(), rel=1e-6)
    assert cmffc_loss(gv[-1:], ga[-1:], attr[-1:], m[-1:]).item() == 0.0


# -- Eq. 5 centroid ---------------------------------------------------------------------------
def clusters(spread: float, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(D)[:3] * 5
    classes = torch.arange(3).repeat(5)
    return centres[classes] + spread * torch.randn(15, D, generator=g), classes


def test_centroid_loss_falls_as_clusters_tighten():
    values = [centroid_loss(*clusters(s), margin=1.0).item() for s in (4.0, 2.0, 1.0, 0.3, 0.0)]
    assert all(b < a for a, b in zip(values, values[1:])), values
    assert values[-1] < 1e-6           # tight and farther apart than the margin: nothing left


def test_centroid_loss_pushes_close_centroids_apart():
    e, classes = clusters(0.0)
    far = centroid_loss(e, classes, margin=1.0)
    near = centroid_loss(e + 5 * torch.ones(D), classes, margin=1.0)   # centroids squeezed
    assert near > far


def test_centroid_loss_single_class_and_unknowns():
    e = torch.randn(4, D, requires_grad=True)
    single = centroid_loss(e, torch.zeros(4, dtype=torch.long))
    assert torch.isfinite(single) and single > 0
    single.backward()
    assert torch.isfinite(e.grad).all()
    none = centroid_loss(e, torch.full((4,), -1))
    assert none.item() == 0.0 and none.requires_grad


# -- CAD terms --------------------------------------------------------------------------------
def test_cad_kl_zero_on_agreement_and_symmetric():
    d, a = torch.randn(5), torch.randn(5, C)
    assert cad_kl(d, d.clone(), a, a.clone()).abs().item() < 1e-6
    d2, a2 = torch.randn(5), torch.randn(5, C)
    k = cad_kl(d, d2, a, a2)
    assert k > 0 and torch.allclose(k, cad_kl(d2, d, a2, a), atol=1e-6)


def test_cad_distill_zero_when_student_matches_and_teacher_detached():
    s = torch.randn(4, C, requires_grad=True)
    t = torch.randn(4, C, requires_grad=True)
    assert cad_distill(t.detach(), t, tau=2.0).abs().item() < 1e-6
    loss = cad_distill(s, t, tau=2.0)
    assert loss > 0
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None                                   # stop-gradient on the teacher
    assert cad_distill(torch.randn(4), torch.randn(4)) >= 0  # binary logits work too


# -- Eq. 6 total ------------------------------------------------------------------------------
def tiny_loss(**overrides) -> AMDDLoss:
    return build_loss(get_config("tiny", {f"loss.{k}": v for k, v in overrides.items()}))


def test_total_is_weighted_sum_and_differentiable():
    loss_fn = tiny_loss()
    out = fake_out()
    total = loss_fn(out, LABEL, METHOD)
    last, w = loss_fn.last, loss_fn.weights
    expected = sum(w[k] * last[k] for k in ("det", "attr", "con", "cmffc", "cent"))
    assert math.isclose(total.item(), expected, rel_tol=1e-5)
    assert set(last) == {"det", "attr", "con", "cmffc", "cent", "total"}
    assert all(last[k] > 0 for k in ("det", "attr", "con", "cmffc", "cent"))
    total.backward()
    for k, v in out.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), k
        assert v.grad.abs().sum() > 0, k


@pytest.mark.parametrize("term,keys", [("det", ["det_logit"]), ("attr", ["attr_logits"]),
                                       ("con", ["z_v", "z_a"]),
                                       ("cmffc", ["trace_logits_v", "trace_logits_a"]),
                                       ("cent", ["embedding"])])
def test_zero_weight_removes_term(term, keys):
    # CMFFC's agreement part also reads attr_logits, so the attr check switches it off too
    also = {"w_cmffc": 0.0} if term == "attr" else {}
    loss_fn = tiny_loss(**{f"w_{term}": 0.0}, **also)
    out = fake_out(requires_grad=False)
    before = loss_fn(out, LABEL, METHOD).item()
    assert term not in loss_fn.computed and loss_fn.last[term] == 0.0
    perturbed = dict(out)
    for k in keys:
        perturbed[k] = out[k] + 3.0 * torch.randn_like(out[k])
        if k.startswith("f_"):
            perturbed[k] = F.normalize(perturbed[k], dim=-1)
    assert loss_fn(perturbed, LABEL, METHOD).item() == pytest.approx(before, rel=1e-6)
    # and with its weight on, the same perturbation changes the total
    on = tiny_loss()
    assert on(perturbed, LABEL, METHOD).item() != pytest.approx(on(out, LABEL, METHOD).item())


def test_attribution_term_leaves_out_unknown_methods():
    loss_fn = tiny_loss()
    out = fake_out(requires_grad=False)
    before = loss_fn(out, LABEL, METHOD).item()
    known = METHOD != -1
    expected = F.cross_entropy(out["attr_logits"][known], METHOD[known]).item()
    assert loss_fn.last["attr"] == pytest.approx(expected, rel=1e-5)
    changed = dict(out, attr_logits=out["attr_logits"].clone())
    changed["attr_logits"][~known] += 10 * torch.randn(int((~known).sum()), C)
    assert loss_fn(changed, LABEL, METHOD).item() == pytest.approx(before, rel=1e-6)


def test_contrastive_term_uses_real_clips_only():
    loss_fn = tiny_loss()
    out = fake_out(requires_grad=False)
    loss_fn(out, LABEL, METHOD)
    real = LABEL == 0
    expected = info_nce(out["z_v"][real], out["z_a"][real], loss_fn.cfg.temperature).item()
    assert loss_fn.last["con"] == pytest.approx(expected, rel=1e-5)
    changed = dict(out, z_a=out["z_a"].clone())
    changed["z_a"][~real] = out["z_v"][~real]          # fake clips do not take part
    loss_fn(changed, LABEL, METHOD)
    assert loss_fn.last["con"] == pytest.approx(expected, rel=1e-5)


def test_zero_weight_term_is_not_computed(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a term with weight 0 was computed")
    monkeypatch.setattr(losses, "cmffc_loss", boom)
    monkeypatch.setattr(losses, "info_nce", boom)
    tiny_loss(w_cmffc=0.0, w_con=0.0)(fake_out(), LABEL, METHOD)


@pytest.mark.parametrize("label,method", [
    (torch.ones(B, dtype=torch.long), torch.tensor([1, 2, 3, 4, 5, 6])),   # no real clip
    (torch.zeros(B, dtype=torch.long), torch.zeros(B, dtype=torch.long)),   # a single class
    (torch.ones(B, dtype=torch.long), torch.full((B,), -1)),                # all unknown methods
])
def test_awkward_batches_are_finite(label, method):
    loss_fn = tiny_loss()
    out = fake_out()
    total = loss_fn(out, label, method)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(v.grad).all() for v in out.values())
    assert all(math.isfinite(x) for x in loss_fn.last.values())


def test_finite_under_bf16_autocast_and_fp16_inputs():
    loss_fn = tiny_loss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = loss_fn(fake_out(), LABEL, METHOD)
    assert total.dtype == torch.float32 and torch.isfinite(total)
    half = {k: v.detach().half().requires_grad_(True) for k, v in fake_out().items()}
    half["det_logit"] = half["det_logit"].detach().mul(30).requires_grad_(True)  # saturating
    total = loss_fn(half, LABEL, METHOD)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(v.grad).all() for v in half.values())
    for term in ("det", "attr", "con", "cmffc", "cent"):
        assert math.isfinite(loss_fn.last[term])


def test_reduction_none_gives_per_clip_losses_with_the_same_mean():
    loss_fn = tiny_loss()
    out = fake_out(requires_grad=False)
    total = loss_fn(out, LABEL, METHOD)
    loss_fn.reduction = "none"
    per_clip = loss_fn(out, LABEL, METHOD)
    assert per_clip.shape == (B,)
    assert per_clip.mean().item() == pytest.approx(total.item(), rel=1e-5)


def test_fastai_protocol_and_alpha():
    loss_fn = build_loss(get_config("tiny"), 0.25)
    out = fake_out()
    assert loss_fn.reduction == "mean"
    assert loss_fn.activation(out) is out and loss_fn.decodes(out) is out
    assert loss_fn.alpha == 0.25
    assert build_loss(get_config("tiny"), alpha=0.4).alpha == 0.4
    with pytest.raises(ValueError):
        build_loss(get_config("tiny"), 1.5)
    with pytest.raises(ValueError, match="method_idx"):
        loss_fn(out, LABEL[:3], METHOD)


# -- library calls replaced hand-written code: the numbers (and gradients) must not move --------
def _old_focal(logit, target, gamma, alpha):
    """The hand-written Eq. 1 that ``torchvision.ops.sigmoid_focal_loss`` replaced."""
    ce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    loss = (1.0 - torch.exp(-ce)).pow(gamma) * ce if gamma else ce
    if alpha is not None:
        loss = (alpha * target + (1.0 - alpha) * (1.0 - target)) * loss
    return loss


def _old_kl(logp, logq):
    """The hand-written batch-mean KL(p||q) that ``F.kl_div(..., log_target=True)`` replaced."""
    return (logp.exp() * (logp - logq)).sum(dim=-1).mean()


@pytest.mark.parametrize("gamma,alpha", [(2.0, None), (0.0, None), (1.5, 0.3), (2.0, 0.0),
                                         (2.0, 1.0), (0.5, 0.75)])
def test_focal_equals_the_hand_written_eq1(gamma, alpha):
    g = torch.Generator().manual_seed(int(gamma * 10) + (0 if alpha is None else int(alpha * 100)))
    logit = (torch.randn(64, generator=g) * 4).requires_grad_(True)
    target = (torch.rand(64, generator=g) > 0.4).float()
    ours = binary_focal_loss(logit, target, gamma, alpha, reduction="none")
    (grad,) = torch.autograd.grad(ours.sum(), logit)
    ref = _old_focal(logit, target, gamma, alpha)
    (ref_grad,) = torch.autograd.grad(ref.sum(), logit)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7)
    assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)
    for red, f in (("mean", torch.mean), ("sum", torch.sum)):
        assert torch.allclose(binary_focal_loss(logit, target, gamma, alpha, reduction=red),
                              f(ref), rtol=1e-5)


def test_kl_terms_equal_the_hand_written_ones():
    g = torch.Generator().manual_seed(3)
    for k in (2, C):
        lp = F.log_softmax(torch.randn(9, k, generator=g) * 2, dim=-1)
        lq = F.log_softmax(torch.randn(9, k, generator=g) * 2, dim=-1)
        assert torch.allclose(losses._sym_kl(lp, lq),
                              0.5 * (_old_kl(lp, lq) + _old_kl(lq, lp)), rtol=1e-5, atol=1e-7)
    d_v, d_a = torch.randn(9, generator=g), torch.randn(9, generator=g)
    a_v, a_a = torch.randn(9, C, generator=g), torch.randn(9, C, generator=g)
    two = losses._two_class_log_probs
    ref = 0.5 * (_old_kl(two(d_v), two(d_a)) + _old_kl(two(d_a), two(d_v))) + 0.5 * (
        _old_kl(F.log_softmax(a_v, -1), F.log_softmax(a_a, -1))
        + _old_kl(F.log_softmax(a_a, -1), F.log_softmax(a_v, -1)))
    assert torch.allclose(cad_kl(d_v, d_a, a_v, a_a), ref, rtol=1e-5, atol=1e-7)
    s, t, tau = torch.randn(9, C, generator=g), torch.randn(9, C, generator=g), 2.0
    ref = tau ** 2 * _old_kl(F.log_softmax(t / tau, -1), F.log_softmax(s / tau, -1))
    assert torch.allclose(cad_distill(s, t, tau), ref, rtol=1e-5, atol=1e-7)
    ref = tau ** 2 * _old_kl(two(d_a / tau), two(d_v / tau))    # binary logits
    assert torch.allclose(cad_distill(d_v, d_a, tau), ref, rtol=1e-5, atol=1e-7)

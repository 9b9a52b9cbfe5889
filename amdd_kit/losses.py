"""AMDD's loss terms, CAD's two extra terms, and their weighted sum.

The AMDD paper (Ahmad, Zhang & Mao, 2026) names its losses but the material we have gives no
formulas, so these are **our readings** (DESIGN.md "Losses"); the equation numbers are ours.
Notation: ``B`` batch, ``s`` the detection logit, ``y`` in {0 real, 1 fake}, ``p = sigmoid(s)``,
``m`` the generator class (``method_idx``, -1 = not one of the known classes), ``cos`` the
cosine similarity, ``mu^v_c`` / ``mu^a_c`` the mean visual / audio fingerprint of class ``c``
in the batch.

* Eq. 1 detection, binary focal loss:
  ``L_det = -alpha_t (1 - p_t)^gamma log p_t``, ``p_t = p if y = 1 else 1 - p``,
  ``alpha_t = alpha if y = 1 else 1 - alpha`` (no alpha: ``alpha_t = 1``).
* Eq. 2 attribution: ``L_attr = CE(attr_logits, m)`` over clips with ``m != -1``.
* Eq. 3 contrastive, symmetric InfoNCE over the real clips of the batch:
  ``S_ij = cos(z^v_i, z^a_j) / tau``,
  ``L_con = 1/2 [CE(S, diag) + CE(S^T, diag)]`` (row i's positive is column i).
* Eq. 4 CMFFC (cross-modal forensic fingerprint consistency). Each generator leaves a trace
  in each modality, factorised from ``method`` (``config.METHOD_TRACES``): visual trace
  ``v(m)`` in ``VISUAL_TRACES`` (``none`` for a real video), audio trace ``a(m)`` in
  ``AUDIO_TRACES`` (``none`` for real audio). With cosine-prototype logits
  ``g^v = s cos(f^v, P^v)``, ``g^a = s cos(f^a, P^a)`` (learned prototypes, scale ``s``):
  ``L_id = 1/2 [CE(g^v, v(m)) + CE(g^a, a(m))]`` -- each fingerprint identifies its own
  modality's trace; and the two traces must agree with the generator the fused head names:
  ``q(c) ∝ softmax(g^v)_{v(c)} softmax(g^a)_{a(c)}`` (the generators consistent with both
  fingerprints), ``L_agree = 1/2 [KL(q || p) + KL(p || q)]``, ``p = softmax(attr_logits)``.
  ``L_cmffc = L_id + L_agree``. Collapsed fingerprints (``f^v = f^a = u``) pay at least
  ``H(v) + H(a)`` (the trace labels' entropies) in ``L_id``, and a modality the generator left
  untouched has a well-defined target (``none``): real, faceswap and fsgan share the real audio.
* Eq. 5 centroid regularisation of the shared embedding ``e_i`` (L2-normalised):
  ``L_cent = mean_i ||e_i - mu_{m_i}||^2 + mean_{c<c'} max(0, margin - ||mu_c - mu_c'||)``.
* Eq. 6 total: ``L = w_det L_det + w_attr L_attr + w_con L_con + w_cmffc L_cmffc
  + w_cent L_cent`` (+ CAD's terms below), weights in ``cfg.loss``; a weight of 0 skips the term.

CAD (Du et al., 2025), our reading (DESIGN.md "CAD"):

* Eq. 7 agreement: ``L_kl = 1/2 [KL(P_v || P_a) + KL(P_a || P_v)]`` between the visual and
  audio teachers' real/fake predictions, on **in-sync (real) clips only**: there lips and speech
  tell the same story; a fake clip's modalities may rightly disagree (a faceswap's audio is real).
* Eq. 8 distillation: ``L_distill = tau^2 KL(softmax(t / tau) || softmax(s / tau))`` from the
  (detached, stop-gradient) teachers to the fused student, for detection (teacher: the clip is
  fake when either modality is, ``P(fake) = 1 - (1 - p_v)(1 - p_a)``) and attribution (teacher:
  the generators consistent with both teachers' traces, as in Eq. 4's ``q``); optional feature
  distillation ``1 - cos(sync_v, sg(z_v))`` (and audio), weight ``w_cad_feat``.
* the teachers themselves learn **their own modality's labels** (``w_cad_teacher``): the
  visual teacher Eq. 1 on ``video_fake`` plus CE on the visual trace, the audio teacher Eq. 1 on
  ``audio_fake`` plus CE on the audio trace (the visual teacher is never asked to detect a
  cloned voice it cannot see).

All terms are computed in float32 with autocast disabled, so they stay finite under bf16/fp16
training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from .config import AUDIO_TRACES, METHOD_TRACES, METHODS, VISUAL_TRACES, Config, LossConfig

AMDD_TERMS = ("det", "attr", "con", "cmffc", "cent")
CAD_TERMS = ("teacher", "kl", "distill", "feat")


# -- helpers -----------------------------------------------------------------------------------
def _plain(t: torch.Tensor) -> torch.Tensor:
    """Strip tensor subclasses (fastai's ``TensorCategory`` ...) so plain torch ops apply."""
    t = torch.as_tensor(t)
    return t.as_subclass(torch.Tensor) if type(t) is not torch.Tensor else t


def _zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A float32 scalar 0 that keeps the autograd graph of ``tensors`` (gradients of 0)."""
    return sum(t.float().sum() for t in tensors) * 0.0


def _class_means(x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class means of rows of ``x [n,d]``: ``(mu [K,d], inv [n])``; ``inv`` maps each row to
    its class's row in ``mu`` (classes in sorted order)."""
    _, inv = torch.unique(classes, return_inverse=True)
    onehot = F.one_hot(inv).to(x.dtype)                     # [n,K]
    mu = onehot.t() @ x / onehot.sum(dim=0)[:, None]        # [K,d]
    return mu, inv


def _two_class_log_probs(logit: torch.Tensor) -> torch.Tensor:
    """A binary logit ``[B]`` as 2-class log-probabilities ``[B,2]`` (real, fake)."""
    return torch.stack([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=-1)


def _log_probs(logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Log-probabilities ``[B,K]`` from ``[B,K]`` logits or a binary logit ``[B]``."""
    logits = logits.float() / tau
    return _two_class_log_probs(logits) if logits.dim() == 1 else F.log_softmax(logits, dim=-1)


# -- Eq. 1-5: AMDD ----------------------------------------------------------------------------
def binary_focal_loss(logit: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                      alpha: float | None = None, reduction: str = "mean") -> torch.Tensor:
    """Eq. 1, binary focal loss on detection logits ``[B]`` against targets ``[B]`` in {0,1}.

    ``L = -alpha_t (1 - p_t)^gamma log p_t``: torchvision's ``sigmoid_focal_loss``, computed in
    float32. ``gamma = 0`` and ``alpha = None`` give exactly the binary cross-entropy.
    ``alpha`` in [0, 1] weighs the fake class (``1 - alpha`` the real class), as torchvision's
    does; the class-balanced choice is the fraction of real clips in the training split.
    ``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``).
    """
    logit, target = _plain(logit).float(), _plain(target).float()
    if logit.shape != target.shape:
        raise ValueError(f"logit {tuple(logit.shape)} and target {tuple(target.shape)} differ")
    return sigmoid_focal_loss(logit, target, alpha=-1.0 if alpha is None else alpha,
                              gamma=gamma, reduction=reduction)


def attribution_ce(logits: torch.Tensor, method_idx: torch.Tensor, ignore_index: int = -1,
                   reduction: str = "mean") -> torch.Tensor:
    """Eq. 2, cross-entropy of attribution logits ``[B,C]`` over ``method_idx`` ``[B]``.

    Clips with ``method_idx == ignore_index`` (held-out generators) are left out; when all are,
    the result is 0 (graph kept). ``reduction="none"`` gives ``[B]`` with 0 at ignored clips.
    """
    logits, method_idx = _plain(logits).float(), _plain(method_idx).long()
    valid = method_idx != ignore_index
    n_classes = logits.shape[-1]
    if bool(((method_idx[valid] < 0) | (method_idx[valid] >= n_classes)).any()):
        raise ValueError(f"method_idx must be in 0..{n_classes - 1} or {ignore_index}, "
                         f"got {sorted(set(method_idx.tolist()))}")
    if not bool(valid.any()):
        return _zero(logits) if reduction != "none" else logits.sum(-1) * 0.0
    return F.cross_entropy(logits, method_idx, ignore_index=ignore_index, reduction=reduction)


def info_nce(z_v: torch.Tensor, z_a: torch.Tensor, temperature: float = 0.1,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 3, symmetric InfoNCE between pooled visual and audio features ``[B,d]``.

    Only rows where ``mask`` (``[B]`` bool, e.g. ``label == 0``: real, in-sync clips) is true
    take part: the in-sync pair (i, i) is the positive, every other pair a negative. Fewer than 2
    such rows: 0, with the graph kept.
    """
    z_v, z_a = _plain(z_v), _plain(z_a)
    if mask is not None:
        mask = _plain(mask).bool()
        zv, za = z_v[mask], z_a[mask]
    else:
        zv, za = z_v, z_a
    n = zv.shape[0]
    if n < 2:
        return _zero(z_v, z_a)
    zv, za = F.normalize(zv.float(), dim=-1), F.normalize(za.float(), dim=-1)
    sim = zv @ za.t() / temperature                          # [n,n]
    target = torch.arange(n, device=sim.device)
    return 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.t(), target))


def _trace_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tables ``[C]``: visual and audio trace index of each attribution class."""
    v = [VISUAL_TRACES.index(METHOD_TRACES[m][0]) for m in METHODS]
    a = [AUDIO_TRACES.index(METHOD_TRACES[m][1]) for m in METHODS]
    return torch.tensor(v, device=device), torch.tensor(a, device=device)


def trace_targets(method_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Visual and audio trace labels ``[B]`` of generator classes ``method_idx`` ``[B]``
    (``-1``, an unknown generator, stays ``-1``)."""
    method_idx = _plain(method_idx).long()
    tv, ta = _trace_tables(method_idx.device)
    safe = method_idx.clamp(min=0)
    unknown = method_idx < 0
    return (torch.where(unknown, -1, tv[safe]), torch.where(unknown, -1, ta[safe]))


def method_log_probs_from_traces(trace_logits_v: torch.Tensor, trace_logits_a: torch.Tensor
                                 ) -> torch.Tensor:
    """Generator log-probabilities ``[B,C]`` implied by both traces' posteriors.

    ``log q(c) = log softmax(g^v)_{v(c)} + log softmax(g^a)_{a(c)}``, renormalised over the
    ``C`` generators (only trace pairs that some generator makes get mass).
    """
    lv = F.log_softmax(_plain(trace_logits_v).float(), dim=-1)
    la = F.log_softmax(_plain(trace_logits_a).float(), dim=-1)
    tv, ta = _trace_tables(lv.device)
    joint = lv[:, tv] + la[:, ta]
    return joint - torch.logsumexp(joint, dim=-1, keepdim=True)


def cmffc_loss(trace_logits_v: torch.Tensor, trace_logits_a: torch.Tensor,
               attr_logits: torch.Tensor, method_idx: torch.Tensor,
               ignore_index: int = -1) -> torch.Tensor:
    """Eq. 4, CMFFC: each fingerprint identifies its own trace, and the traces agree with the
    fused attribution.

    Args:
        trace_logits_v: ``[B,K_v]`` visual fingerprint's trace logits (``VISUAL_TRACES``).
        trace_logits_a: ``[B,K_a]`` audio fingerprint's trace logits (``AUDIO_TRACES``).
        attr_logits: ``[B,C]`` the fused attribution head's logits (``METHODS``).
        method_idx: ``[B]`` generator class, ``ignore_index`` rows left out.

    Returns:
        ``L_id + L_agree`` (module docstring). Collapsed fingerprints pay at least the entropy
        of the trace labels in ``L_id``; 0 only when both fingerprints name their traces with
        certainty and the fused head names the one generator that makes both.
    """
    tv, ta = _plain(trace_logits_v), _plain(trace_logits_a)
    attr, method_idx = _plain(attr_logits), _plain(method_idx).long()
    valid = method_idx != ignore_index
    if not bool(valid.any()):
        return _zero(tv, ta, attr)
    tv, ta, attr, m = tv[valid].float(), ta[valid].float(), attr[valid].float(), method_idx[valid]
    y_v, y_a = trace_targets(m)
    ident = 0.5 * (F.cross_entropy(tv, y_v) + F.cross_entropy(ta, y_a))
    agree = _sym_kl(method_log_probs_from_traces(tv, ta), F.log_softmax(attr, dim=-1))
    return ident + agree


def centroid_loss(emb: torch.Tensor, classes: torch.Tensor, margin: float = 1.0,
                  ignore_index: int = -1) -> torch.Tensor:
    """Eq. 5, centroid regularisation of shared embeddings ``[B,d_e]`` (L2-normalised first).

    Pull: mean squared distance of each embedding to its class centroid. Push: hinge
    ``max(0, margin - ||mu_c - mu_c'||)`` averaged over pairs of classes in the batch (none
    with a single class). Falls as clusters tighten and separate.
    """
    emb, classes = _plain(emb), _plain(classes).long()
    valid = classes != ignore_index
    if not bool(valid.any()):
        return _zero(emb)
    e = F.normalize(emb[valid].float(), dim=-1)
    mu, inv = _class_means(e, classes[valid])
    pull = (e - mu[inv]).pow(2).sum(dim=-1).mean()
    K = mu.shape[0]
    if K < 2:
        return pull
    i, j = torch.triu_indices(K, K, offset=1, device=mu.device)
    dist = ((mu[i] - mu[j]).pow(2).sum(dim=-1) + 1e-8).sqrt()   # eps: finite grad at 0
    return pull + F.relu(margin - dist).mean()


# -- Eq. 7-8: CAD -----------------------------------------------------------------------------
def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(p||q) for log-probabilities ``[B,K]`` (``F.kl_div``, ``batchmean``)."""
    return F.kl_div(logq, logp, reduction="batchmean", log_target=True)


def _sym_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Batch mean of 1/2 [KL(p||q) + KL(q||p)] for log-probabilities ``[B,K]``."""
    return 0.5 * (_kl(logp, logq) + _kl(logq, logp))


def cad_kl(det_v: torch.Tensor, det_a: torch.Tensor, attr_v: torch.Tensor | None = None,
           attr_a: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7, symmetric KL agreement of the visual and audio teachers' predictions.

    ``det_v``, ``det_a`` ``[B]`` binary logits (as 2-class distributions); ``attr_v``,
    ``attr_a`` ``[B,C]`` attribution logits (optional, added). ``mask`` ``[B]`` bool restricts
    the term to some clips (none left: 0 with the graph kept).
    """
    det_v, det_a = _plain(det_v), _plain(det_a)
    pairs = [(det_v, det_a)]
    if attr_v is not None and attr_a is not None:
        pairs.append((_plain(attr_v), _plain(attr_a)))
    if mask is not None:
        mask = _plain(mask).bool()
        if not bool(mask.any()):
            return _zero(*[t for p in pairs for t in p])
        pairs = [(p[mask], q[mask]) for p, q in pairs]
    return sum(_sym_kl(_log_probs(p), _log_probs(q)) for p, q in pairs)


def cad_distill(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                tau: float = 2.0) -> torch.Tensor:
    """Eq. 8, ``tau^2 KL(softmax(t/tau) || softmax(s/tau))``, batch mean, teacher detached.

    Logits ``[B,K]`` or binary logits ``[B]`` (as 2-class distributions). The stop-gradient on
    the teacher means the term only moves the student.
    """
    log_s = _log_probs(_plain(student_logits), tau)
    log_t = _log_probs(_plain(teacher_logits).detach(), tau)
    return (tau ** 2) * _kl(log_t, log_s)


def cad_feature_distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Optional CAD feature distillation: batch mean of ``1 - cos(student, sg(teacher))`` over
    ``[B,d]`` features."""
    return (1.0 - F.cosine_similarity(_plain(student).float(),
                                      _plain(teacher).detach().float(), dim=-1)).mean()


# -- Eq. 6: the weighted sum ------------------------------------------------------------------
class AMDDLoss(nn.Module):
    """Weighted sum of the loss terms (Eq. 6), for a fastai ``Learner``.

    ``loss(out, label, method_idx) -> scalar``: ``out`` is the model's output dict, ``label``
    ``[B]`` (0 real / 1 fake), ``method_idx`` ``[B]`` (-1 = unknown generator). CAD outputs (with
    ``det_logit_v`` ...) add the CAD terms; for CAD the AMDD-only terms (con, cmffc, cent) are
    off unless ``cfg.loss.cad_amdd_terms``. After each call ``self.last`` holds every term as a
    float (skipped terms: 0.0) and ``self.computed`` the names of the terms actually computed.

    ``reduction = "none"`` (fastai's ``get_preds(with_loss=True)``) returns ``[B]`` per-clip
    losses: the weighted per-clip supervised terms plus the batch-level terms spread evenly, so
    their mean equals the scalar loss.
    """

    def __init__(self, cfg: Config | LossConfig, alpha: float | None = None, arch: str = "amdd"):
        super().__init__()
        if isinstance(cfg, Config):
            arch = cfg.model.arch
            cfg = cfg.loss
        self.cfg = cfg
        self.arch = arch.lower()
        self.alpha = alpha if alpha is not None else cfg.focal_alpha
        self.reduction = "mean"
        amdd_on = self.arch != "cad" or cfg.cad_amdd_terms
        self.weights: dict[str, float] = {
            "det": cfg.w_det, "attr": cfg.w_attr,
            "con": cfg.w_con if amdd_on else 0.0,
            "cmffc": cfg.w_cmffc if amdd_on else 0.0,
            "cent": cfg.w_cent if amdd_on else 0.0,
            "teacher": cfg.w_cad_teacher, "kl": cfg.w_cad_kl,
            "distill": cfg.w_cad_distill, "feat": cfg.w_cad_feat,
        }
        self._last: dict[str, torch.Tensor] = {}
        self.computed: set[str] = set()

    @property
    def last(self) -> dict[str, float]:
        """Every term of the last call as a float (read lazily: one device sync per read)."""
        return {k: float(v) for k, v in self._last.items()}

    # fastai looks for these two on the loss function
    def activation(self, out):
        return out

    def decodes(self, out):
        return out

    def forward(self, out: dict, label: torch.Tensor, method_idx: torch.Tensor) -> torch.Tensor:
        missing = [k for k in ("det_logit", "attr_logits") if k not in out]
        if missing:
            raise KeyError(f"model output lacks {missing}; got keys {sorted(out)}")
        device_type = out["det_logit"].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return self._compute(out, _plain(label), _plain(method_idx).long())

    def _compute(self, out: dict, label: torch.Tensor, method_idx: torch.Tensor) -> torch.Tensor:
        w, c = self.weights, self.cfg
        det_logit = _plain(out["det_logit"])
        B = det_logit.shape[0]
        if label.shape != (B,) or method_idx.shape != (B,):
            raise ValueError(f"label {tuple(label.shape)} and method_idx "
                             f"{tuple(method_idx.shape)} must both be [{B}]")
        is_cad = "det_logit_v" in out
        per_clip: dict[str, torch.Tensor] = {}    # [B] terms (supervised)
        batch: dict[str, torch.Tensor] = {}       # scalar terms
        n_known = (method_idx != -1).sum().clamp(min=1)

        if w["det"]:
            per_clip["det"] = binary_focal_loss(det_logit, label, c.focal_gamma, self.alpha,
                                                reduction="none")
        if w["attr"]:
            per_clip["attr"] = (attribution_ce(out["attr_logits"], method_idx, reduction="none")
                                * B / n_known)
        if w["con"]:
            batch["con"] = info_nce(out["z_v"], out["z_a"], c.temperature, mask=label == 0)
        if w["cmffc"]:
            batch["cmffc"] = cmffc_loss(out["trace_logits_v"], out["trace_logits_a"],
                                        out["attr_logits"], method_idx)
        if w["cent"]:
            batch["cent"] = centroid_loss(out["embedding"], method_idx, c.centroid_margin)
        if is_cad:
            y_v, y_a = trace_targets(method_idx)
            known = (method_idx != -1).float()
            if w["teacher"]:
                teach = det_logit.new_zeros(B, dtype=torch.float32)
                for m, y in (("v", y_v), ("a", y_a)):
                    fake = (y > 0).float()  # trace "none" (index 0) = this modality is real
                    teach = teach + known * binary_focal_loss(out[f"det_logit_{m}"], fake,
                                                              c.focal_gamma, None, "none")
                    teach = teach + attribution_ce(out[f"trace_logits_{m}"], y,
                                                   reduction="none") * B / n_known
                per_clip["teacher"] = 0.5 * teach
            if w["kl"]:
                batch["kl"] = cad_kl(out["det_logit_v"], out["det_logit_a"], mask=label == 0)
            if w["distill"]:
                p_v = torch.sigmoid(_plain(out["det_logit_v"]).float().detach())
                p_a = torch.sigmoid(_plain(out["det_logit_a"]).float().detach())
                p_fake = (1 - (1 - p_v) * (1 - p_a)).clamp(1e-6, 1 - 1e-6)
                det_t = torch.log(p_fake) - torch.log1p(-p_fake)         # back to a logit
                attr_t = method_log_probs_from_traces(out["trace_logits_v"].detach(),
                                                      out["trace_logits_a"].detach())
                batch["distill"] = (cad_distill(det_logit, det_t, c.cad_tau)
                                    + cad_distill(out["attr_logits"], attr_t, c.cad_tau))
            if w["feat"]:
                batch["feat"] = 0.5 * (cad_feature_distill(out["sync_v"], out["z_v"])
                                       + cad_feature_distill(out["sync_a"], out["z_a"]))

        vec = det_logit.new_zeros(B, dtype=torch.float32) + _zero(det_logit)
        for k, v in per_clip.items():
            vec = vec + w[k] * v
        batch_total = sum((w[k] * v for k, v in batch.items()), _zero(det_logit))
        total = vec.mean() + batch_total

        names = AMDD_TERMS + (CAD_TERMS if is_cad else ())
        last = {k: total.new_zeros(()) for k in names}
        last.update({k: v.detach().mean() for k, v in per_clip.items()})
        last.update({k: v.detach() for k, v in batch.items()})
        last["total"] = total.detach()
        self._last = last
        self.computed = set(per_clip) | set(batch)
        return _reduce_total(vec, batch_total, total, self.reduction)


def _reduce_total(vec: torch.Tensor, batch_total: torch.Tensor, total: torch.Tensor,
                  reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return total
    if reduction == "sum":
        return total * vec.shape[0]
    if reduction == "none":
        return vec + batch_total
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def build_loss(cfg: Config, alpha: float | None = None) -> AMDDLoss:
    """The loss for ``cfg`` (AMDD or CAD terms by ``cfg.model.arch``).

    ``alpha``: the focal weight of the fake class, computed by the trainer from the training
    split (fraction of real clips: class-balanced). ``None`` falls back to
    ``cfg.loss.focal_alpha`` (itself ``None``: no class weighting).
    """
    if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"focal alpha must be in [0, 1], got {alpha}")
    return AMDDLoss(cfg, alpha=None if alpha is None else float(alpha))

"""Where does the model look? Grad-CAM over the face frames, occlusion saliency over the mel.

* :func:`gradcam` -- Grad-CAM (Selvaraju et al., 2017) on the last convolutional block of the
  visual encoder. The block sees every frame separately, so its activations ``A`` have shape
  ``[B*T, C, h, w]``. For a chosen score ``y`` (the detection logit, or one attribution logit)
  each channel gets the weight ``w_c = mean_{h,w} dy/dA_c``; the map is
  ``ReLU(sum_c w_c A_c)``, up-sampled to the frame size and scaled to 0..1 per clip (so frames of
  one clip can be compared with each other) -> ``[B, T, H, W]``.
* :func:`mel_occlusion` -- slide a grey patch (the clip's mean, 0 after standardisation) over
  the log-mel and record how much the score drops -> ``[n_mels, S]`` in 0..1. Model-agnostic
  and easy to read: a bright region is one the decision depends on.
* :func:`mel_gradient` -- the cheaper alternative, ``|dy/dmel * mel|`` (one backward pass).
* :func:`explain_clip` / :func:`explanation_figure` -- one stored clip, explained and drawn.
* :func:`pick_examples` -- a few correctly and wrongly attributed clips per generator.

The target score is chosen with ``target``: ``"fake"`` (the detection logit ``det_logit``,
>0 means fake), ``"real"`` (its negative), ``"predicted"`` (the top attribution logit), or an
attribution class given by name (``"wav2lip"``) or index into :data:`amdd_kit.config.METHODS`.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from fastai.callback.hook import hook_output
from torch import nn

from .config import METHODS
from .viz import frames_mel_figure

log = logging.getLogger(__name__)

Target = str | int

__all__ = ["find_gradcam_layer", "target_score", "gradcam", "mel_occlusion", "mel_gradient",
           "explain_clip", "explanation_figure", "pick_examples"]


# -- which layer, which score -------------------------------------------------------------------
def find_gradcam_layer(model: nn.Module) -> nn.Module:
    """The visual encoder's last convolutional block.

    Looks for ``model.visual.gradcam_layer`` (the model exposes it), then a sub-module of the
    visual encoder named ``layer4`` (torchvision ResNets), then the visual encoder's last
    ``Conv2d``. Raises ``ValueError`` when the model has no visual encoder.
    """
    visual = getattr(model, "visual", None)
    if visual is None:
        raise ValueError("the model has no `visual` encoder to run Grad-CAM on")
    layer = getattr(visual, "gradcam_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    named = [(n, m) for n, m in visual.named_modules() if n.split(".")[-1] == "layer4"]
    if named:
        return named[-1][1]
    convs = [m for m in visual.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise ValueError("no `gradcam_layer`, `layer4` or Conv2d found in model.visual")


def _class_index(target: Target) -> int:
    if isinstance(target, (int, np.integer)):
        if not 0 <= int(target) < len(METHODS):
            raise ValueError(f"attribution class index {target} out of range 0..{len(METHODS) - 1}")
        return int(target)
    if target in METHODS:
        return METHODS.index(target)
    raise ValueError(f"target must be 'fake', 'real', 'predicted', a method name {METHODS} "
                     f"or a class index; got {target!r}")


def target_score(out: dict[str, torch.Tensor], target: Target = "fake") -> torch.Tensor:
    """The scalar per clip that an explanation explains -> ``[B]``.

    ``out`` is the model's output dict (``det_logit`` ``[B]``, ``attr_logits`` ``[B,C]``).
    """
    if target in ("fake", "detection"):
        return out["det_logit"].float().reshape(-1)
    if target == "real":
        return -out["det_logit"].float().reshape(-1)
    logits = out["attr_logits"].float()
    if target == "predicted":
        return logits.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
    return logits[:, _class_index(target)]


def _batch(frames: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept one clip (``[T,3,H,W]``, ``[n_mels,S]``) or a batch; return batched tensors."""
    if frames.dim() == 4:
        frames = frames.unsqueeze(0)
    if mel.dim() == 2:
        mel = mel.unsqueeze(0)
    if frames.dim() != 5 or mel.dim() != 3 or len(frames) != len(mel):
        raise ValueError(f"expected frames [B,T,3,H,W] and mel [B,n_mels,S], got "
                         f"{tuple(frames.shape)} and {tuple(mel.shape)}")
    return frames.float(), mel.float()


# -- Grad-CAM -----------------------------------------------------------------------------------
def gradcam(model: nn.Module, frames: torch.Tensor, mel: torch.Tensor, target: Target = "fake",
            layer: nn.Module | None = None) -> np.ndarray:
    """Grad-CAM heatmaps over the face frames -> float32 ``[B, T, H, W]`` in 0..1.

    ``frames`` float ``[B,T,3,H,W]`` and ``mel`` ``[B,n_mels,S]`` are model inputs (normalised,
    e.g. from :func:`amdd_kit.loaders.to_model_inputs`), on the model's device. ``layer``
    defaults to :func:`find_gradcam_layer`. Each clip's map is scaled by its own maximum (a
    clip whose map is zero everywhere stays zero: the target does not depend on the frames).
    """
    frames, mel = _batch(frames, mel)
    B, T, _, H, W = frames.shape
    was_training = model.training
    model.eval()
    try:
        # fastai's hook keeps the block's output (with its graph: detach=False) and removes
        # itself on leaving the block
        with hook_output(layer or find_gradcam_layer(model), detach=False) as hook, \
                torch.enable_grad():
            frames = frames.detach().clone().requires_grad_(True)  # grads flow even if frozen
            score = target_score(model(frames, mel), target)
            act = hook.stored
            if act is None:
                raise RuntimeError("the Grad-CAM layer did not run in the forward pass")
            if act.dim() != 4 or act.shape[0] != B * T:
                raise ValueError(f"Grad-CAM layer output {tuple(act.shape)} is not "
                                 f"[B*T, C, h, w] with B*T={B * T}")
            grad = None
            if score.requires_grad:  # False when the score does not depend on any input
                (grad,) = torch.autograd.grad(score.sum(), act, allow_unused=True)
    finally:
        model.train(was_training)
    if grad is None:  # the score does not depend on the visual branch at all
        return np.zeros((B, T, H, W), dtype=np.float32)
    weights = grad.float().mean(dim=(2, 3), keepdim=True)                 # [B*T, C, 1, 1]
    cam = F.relu((weights * act.float()).sum(dim=1, keepdim=True))        # [B*T, 1, h, w]
    cam = F.interpolate(cam, size=(H, W), mode="bilinear", align_corners=False)
    cam = cam.reshape(B, T, H, W).detach()
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(B, 1, 1, 1)
    return (cam / peak).clamp(0, 1).cpu().numpy().astype(np.float32)


# -- mel saliency -------------------------------------------------------------------------------
@torch.no_grad()
def mel_occlusion(model: nn.Module, frames: torch.Tensor, mel: torch.Tensor,
                  target: Target = "fake", patch: tuple[int, int] = (8, 8),
                  stride: tuple[int, int] | None = None, baseline: float = 0.0,
                  batch_size: int = 16) -> np.ndarray:
    """Occlusion saliency over one clip's mel -> float32 ``[n_mels, S]`` in 0..1.

    A ``patch`` (mel bins x columns) set to ``baseline`` slides over the mel with ``stride``
    (default: the patch size, no overlap); each position costs one forward pass, run
    ``batch_size`` at a time. A cell's value is the mean drop of the target score over the
    patches that covered it; increases (the patch made the clip *more* fake) count as 0.
    """
    frames, mel = _batch(frames, mel)
    if len(frames) != 1:
        raise ValueError("mel_occlusion explains one clip at a time")
    model.eval()
    _, n_mels, S = mel.shape
    ph, pw = min(patch[0], n_mels), min(patch[1], S)
    sh, sw = stride or (ph, pw)
    rows = sorted(set(list(range(0, n_mels - ph + 1, sh)) + [n_mels - ph]))
    cols = sorted(set(list(range(0, S - pw + 1, sw)) + [S - pw]))
    positions = [(r, c) for r in rows for c in cols]
    base = float(target_score(model(frames, mel), target)[0])
    drop = torch.zeros(n_mels, S, device=mel.device)
    count = torch.zeros(n_mels, S, device=mel.device)
    for s in range(0, len(positions), batch_size):
        chunk = positions[s:s + batch_size]
        m = mel.repeat(len(chunk), 1, 1)
        for k, (r, c) in enumerate(chunk):
            m[k, r:r + ph, c:c + pw] = baseline
        score = target_score(model(frames.expand(len(chunk), -1, -1, -1, -1), m), target)
        for k, (r, c) in enumerate(chunk):
            drop[r:r + ph, c:c + pw] += base - float(score[k])
            count[r:r + ph, c:c + pw] += 1
    sal = (drop / count.clamp_min(1)).clamp_min(0)
    return (sal / sal.max().clamp_min(1e-12)).cpu().numpy().astype(np.float32)


def mel_gradient(model: nn.Module, frames: torch.Tensor, mel: torch.Tensor,
                 target: Target = "fake") -> np.ndarray:
    """Gradient x input saliency over the mel -> float32 ``[B, n_mels, S]`` in 0..1 per clip."""
    frames, mel = _batch(frames, mel)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            mel = mel.detach().clone().requires_grad_(True)
            score = target_score(model(frames, mel), target)
            (grad,) = torch.autograd.grad(score.sum(), mel, allow_unused=True)
    finally:
        model.train(was_training)
    if grad is None:
        return np.zeros(tuple(mel.shape), dtype=np.float32)
    sal = (grad * mel).abs().detach()
    peak = sal.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (sal / peak).cpu().numpy().astype(np.float32)


# -- stored clips -------------------------------------------------------------------------------
def explain_clip(model: nn.Module, store, clip_id: int, target: Target = "fake",
                 device: torch.device | str | None = None, patch: tuple[int, int] = (16, 16)
                 ) -> dict[str, Any]:
    """Explain one clip of a ClipStore: Grad-CAM on its frames and occlusion on its mel.

    Returns a dict: ``clip_id``, ``method`` (true generator), ``target``, ``p_fake``,
    ``pred_method``, ``frames`` uint8 ``[T,3,H,W]``, ``mel`` float32 ``[n_mels,S]`` (the stored
    log-mel), ``cam`` ``[T,H,W]`` and ``mel_saliency`` ``[n_mels,S]`` (both 0..1).
    """
    from .loaders import to_model_inputs

    m = store.manifest
    rows = np.flatnonzero(m["clip_id"].to_numpy() == clip_id) if "clip_id" in m else []
    if len(rows) == 0:
        raise KeyError(f"clip_id {clip_id} is not in the store {getattr(store, 'path', '')}")
    i = int(rows[0])
    frames_u8 = np.array(store.frames[i:i + 1])      # a writable copy of the memmap slice
    mel16 = np.array(store.mels[i:i + 1])
    device = torch.device(device) if device else next(model.parameters()).device
    fr, me = to_model_inputs(frames_u8, mel16, device)
    with torch.no_grad():
        out = model.eval()(fr, me)
    p_fake = float(torch.sigmoid(out["det_logit"].float()).reshape(-1)[0])
    pred = int(out["attr_logits"].float().argmax(-1)[0])
    return {
        "clip_id": int(clip_id), "method": str(m.iloc[i].get("method", "")), "target": target,
        "p_fake": p_fake, "pred_method": METHODS[pred] if pred < len(METHODS) else str(pred),
        "frames": frames_u8[0], "mel": mel16[0].astype(np.float32),
        "cam": gradcam(model, fr, me, target)[0],
        "mel_saliency": mel_occlusion(model, fr, me, target, patch=patch),
    }


def explanation_figure(ex: dict[str, Any], max_frames: int = 8):
    """Plotly figure of :func:`explain_clip`'s result: Grad-CAM over the frames, mel + saliency
    (drawn by :func:`amdd_kit.viz.frames_mel_figure`)."""
    title = (f"clip {ex['clip_id']}: true {ex['method']}, predicted {ex['pred_method']}, "
             f"p_fake={ex['p_fake']:.2f} (explaining: {ex['target']})")
    return frames_mel_figure(ex["frames"], ex["mel"], title=title, heat=ex["cam"],
                             mel_heat=ex["mel_saliency"], max_frames=max_frames)


def pick_examples(df: pd.DataFrame, n_per_method: int = 1, seed: int = 0,
                  methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Up to ``n_per_method`` correctly and wrongly attributed clips per generator.

    ``df`` is an embeddings table (columns ``clip_id``, ``method``, ``pred_method``, and for
    generators outside the 7 classes ``label``/``pred_label``). A clip is *correct* when its
    predicted generator is its true one; for an unknown generator, when the real/fake decision
    is right. Returns the chosen rows with a column ``outcome`` (``correct``/``wrong``), methods
    in label order.
    """
    need = {"clip_id", "method", "pred_method"}
    if not need <= set(df.columns):
        raise KeyError(f"pick_examples needs columns {sorted(need)}; have {list(df.columns)}")
    known = df["method"].isin(METHODS)
    correct = np.where(known, df["pred_method"] == df["method"],
                       df.get("pred_label", pd.Series(-1, index=df.index))
                       == df.get("label", pd.Series(-2, index=df.index)))
    df = df.assign(outcome=np.where(correct, "correct", "wrong"))
    present = list(df["method"].unique())
    order = [m for m in (methods or [m for m in METHODS if m in present]
                         + sorted(set(present) - set(METHODS)))]
    picks = []
    for method in order:
        for outcome in ("correct", "wrong"):
            g = df[(df["method"] == method) & (df["outcome"] == outcome)]
            if len(g):
                picks.append(g.sample(n=min(n_per_method, len(g)), random_state=seed))
    if not picks:
        return df.iloc[0:0]
    return pd.concat(picks).reset_index(drop=True)

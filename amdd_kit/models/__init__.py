"""AMDD and CAD models, built from a :class:`~amdd_kit.config.Config`.

>>> from amdd_kit.config import get_config
>>> model = build_model(get_config("tiny"))
>>> describe_init(model)
'visual resnet18: random init; audio resnet18: random init'

``model(frames [B,T,3,H,W], mel [B,n_mels,S]) -> dict`` (see docs/contracts.md "Model").
"""
from __future__ import annotations

from torch import nn

from ..config import Config
from .amdd import AMDD
from .audio import AudioEncoder
from .cad import CAD
from .fusion import CrossModalFusion
from .heads import AttentionPool, FingerprintHead, MLPHead
from .visual import VisualEncoder, load_resnet, weights_file

ARCHS = {"amdd": AMDD, "cad": CAD}

__all__ = ["AMDD", "CAD", "ARCHS", "AttentionPool", "AudioEncoder", "CrossModalFusion",
           "FingerprintHead", "MLPHead", "VisualEncoder", "build_model", "count_parameters",
           "describe_init", "load_resnet", "weights_file"]


def build_model(cfg: Config) -> nn.Module:
    """``AMDD(cfg)`` or ``CAD(cfg)`` according to ``cfg.model.arch``."""
    arch = cfg.model.arch.lower()
    if arch not in ARCHS:
        raise ValueError(f"unknown model.arch {cfg.model.arch!r}; choose from {sorted(ARCHS)}")
    return ARCHS[arch](cfg)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def describe_init(model: nn.Module) -> str:
    """How the encoders of ``model`` were initialised, e.g.
    ``'visual resnet50: ImageNet (ResNet50_Weights.IMAGENET1K_V2); audio resnet18: random init'``.
    """
    parts = []
    for name in ("visual", "audio"):
        enc = getattr(model, name, None)
        if enc is not None and hasattr(enc, "init"):
            parts.append(f"{name} {enc.backbone}: {enc.init}")
    return "; ".join(parts) if parts else "unknown"

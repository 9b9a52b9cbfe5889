"""Small building blocks shared by AMDD and CAD: attention pooling, MLP heads, fingerprints.

Shapes: ``B`` batch, ``L`` sequence length (frames or audio steps), ``d`` feature width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionPool(nn.Module):
    """Learned attention pooling of a sequence: ``[B,L,d] -> [B,d]``.

    A linear layer scores every step, a softmax over ``L`` turns the scores into weights, and the
    output is the weighted sum of the steps. The weights of the last call are kept in
    ``self.last_weights`` (``[B,L]``, detached) so a notebook can show which frames mattered.
    """

    def __init__(self, d: int):
        super().__init__()
        self.score = nn.Linear(d, 1)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(x).squeeze(-1), dim=-1)   # [B,L]
        self.last_weights = w.detach()
        return torch.einsum("bl,bld->bd", w, x)


class MLPHead(nn.Module):
    """Two-layer MLP head: Linear -> GELU -> Dropout -> Linear, ``[B,d_in] -> [B,d_out]``."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(d_hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FingerprintHead(nn.Module):
    """Per-modality forensic fingerprint: ``[B,d_in] -> [B,d_f]``, L2-normalised.

    Linear -> GELU -> Linear, then unit length, so that fingerprints live on a sphere and
    the CMFFC loss (``amdd_kit.losses.cmffc_loss``) can compare them by cosine.
    """

    def __init__(self, d_in: int, d_f: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_in), nn.GELU(), nn.Linear(d_in, d_f))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(z), dim=-1)


class PrototypeClassifier(nn.Module):
    """Cosine-prototype classifier of unit fingerprints: ``f [B,d_f] -> logits [B,K]``.

    One learnable prototype per trace class; ``logits = scale * cos(f, prototype_k)``. A
    fingerprint identifies its trace when it points at that trace's prototype, so fingerprints
    that collapse to one direction cannot score well (CMFFC, ``amdd_kit.losses.cmffc_loss``).
    """

    def __init__(self, d_f: int, n_classes: int, scale: float = 10.0):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(n_classes, d_f) / d_f ** 0.5)
        self.scale = scale

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(f, dim=-1) @ F.normalize(self.prototypes, dim=-1).t()

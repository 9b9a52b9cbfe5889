"""Cross-modal attention: each stream attends to the other, then both are pooled and fused.

``v [B,T,d]`` (visual sequence), ``a [B,S',d]`` (audio sequence):

* visual queries, audio keys/values: ``v' = LayerNorm(v + MHA(v, a, a))``      ``[B,T,d]``
* audio queries, visual keys/values: ``a' = LayerNorm(a + MHA(a, v, v))``      ``[B,S',d]``
* attention pooling of each: ``sync_v``, ``sync_a``                            ``[B,d]``
* their concatenation, Linear + LayerNorm -> embedding                         ``[B,d_e]``

A frame whose lips do not match the sound finds no good audio partner (and vice versa), which
changes what the cross-attended streams carry: this is where audio-visual inconsistency
enters the shared embedding.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import Config
from .heads import AttentionPool


class CrossModalFusion(nn.Module):
    """``(v [B,T,d], a [B,S',d]) -> dict(embedding [B,d_e], v [B,T,d], a [B,S',d],
    sync_v [B,d], sync_a [B,d])`` (the last four are the cross-attended streams; CAD returns
    ``sync_v``, ``sync_a`` under the same names)."""

    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.v_from_a = nn.MultiheadAttention(m.d_model, m.n_heads, dropout=m.dropout,
                                              batch_first=True)
        self.a_from_v = nn.MultiheadAttention(m.d_model, m.n_heads, dropout=m.dropout,
                                              batch_first=True)
        self.norm_v = nn.LayerNorm(m.d_model)
        self.norm_a = nn.LayerNorm(m.d_model)
        self.pool_v = AttentionPool(m.d_model)
        self.pool_a = AttentionPool(m.d_model)
        self.out = nn.Sequential(nn.Linear(2 * m.d_model, m.d_embed), nn.LayerNorm(m.d_embed))

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        v2 = self.norm_v(v + self.v_from_a(v, a, a, need_weights=False)[0])   # [B,T,d]
        a2 = self.norm_a(a + self.a_from_v(a, v, v, need_weights=False)[0])   # [B,S',d]
        sync_v, sync_a = self.pool_v(v2), self.pool_a(a2)                     # [B,d] each
        emb = self.out(torch.cat([sync_v, sync_a], dim=-1))                   # [B,d_e]
        return {"embedding": emb, "v": v2, "a": a2, "sync_v": sync_v, "sync_a": sync_a}

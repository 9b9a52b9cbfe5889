"""Cross-modal attention: each stream attends to the other, then both are pooled and fused.

``v [B,T,d]`` (visual sequence), ``a [B,S',d]`` (audio sequence):

* visual queries, audio keys/values: ``v' = LayerNorm(v + MHA(v, a, a))``      ``[B,T,d]``
* audio queries, visual keys/values: ``a' = LayerNorm(a + MHA(a, v, v))``      ``[B,S',d]``
* attention pooling of each, concatenation, Linear + LayerNorm -> embedding    ``[B,d_e]``

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
    pooled_v [B,d], pooled_a [B,d])`` (the last four are the cross-attended streams)."""

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
        pv, pa = self.pool_v(v2), self.pool_a(a2)                             # [B,d] each
        emb = self.out(torch.cat([pv, pa], dim=-1))                           # [B,d_e]
        return {"embedding": emb, "v": v2, "a": a2, "pooled_v": pv, "pooled_a": pa}

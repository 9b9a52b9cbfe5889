"""AMDD: Attribution-Guided Multimodal Deepfake Detection (Ahmad, Zhang & Mao, 2026).

Our reading of the architecture (the paper publishes no code; see DESIGN.md "Model")::

    frames [B,T,3,H,W] --VisualEncoder--> v_seq [B,T,d], z_v [B,d] --FingerprintHead--> f_v [B,d_f]
    mel [B,n_mels,S]   --AudioEncoder---> a_seq [B,S',d], z_a [B,d] --FingerprintHead--> f_a [B,d_f]
    (v_seq, a_seq) --CrossModalFusion--> embedding [B,d_e]
    embedding --MLPHead--> det_logit [B]        (real/fake; > 0 means fake)
    embedding --MLPHead--> attr_logits [B,C]    (generator attribution)
    f_v --PrototypeClassifier--> trace_logits_v [B,K_v]   (which visual trace: VISUAL_TRACES)
    f_a --PrototypeClassifier--> trace_logits_a [B,K_a]   (which audio trace: AUDIO_TRACES)

``d = cfg.model.d_model``, ``d_e = cfg.model.d_embed``, ``d_f = cfg.model.d_fingerprint``,
``C = cfg.model.n_classes``, ``K_v = len(VISUAL_TRACES)``, ``K_a = len(AUDIO_TRACES)``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import AUDIO_TRACES, VISUAL_TRACES, Config
from .audio import AudioEncoder
from .fusion import CrossModalFusion
from .heads import FingerprintHead, MLPHead, PrototypeClassifier
from .visual import VisualEncoder


class AudioVisualModel(nn.Module):
    """What AMDD and CAD share: the visual and audio encoders and the two 2-layer MLP heads on
    the fused embedding ``[B,d_e]`` (real/fake ``det_head``, generator ``attr_head``). Each
    model adds its own cross-modal block and extra heads."""

    def __init__(self, cfg: Config):
        super().__init__()
        m = cfg.model
        self.visual = VisualEncoder(cfg)
        self.audio = AudioEncoder(cfg)
        self.det_head = MLPHead(m.d_embed, m.head_hidden, 1, m.dropout)
        self.attr_head = MLPHead(m.d_embed, m.head_hidden, m.n_classes, m.dropout)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The visual trunk's last residual block, for Grad-CAM."""
        return self.visual.gradcam_layer

    def heads(self, emb: torch.Tensor) -> dict[str, torch.Tensor]:
        """``embedding [B,d_e]`` -> ``det_logit [B]``, ``attr_logits [B,C]`` and the embedding."""
        return {"det_logit": self.det_head(emb).squeeze(-1), "attr_logits": self.attr_head(emb),
                "embedding": emb}


class AMDD(AudioVisualModel):
    """The AMDD model. ``forward(frames [B,T,3,H,W], mel [B,n_mels,S]) -> dict``.

    Output keys (plain ``dict`` so fastai can move/concatenate it): ``det_logit [B]``,
    ``attr_logits [B,C]``, ``embedding [B,d_e]``, ``z_v [B,d]``, ``z_a [B,d]``,
    ``f_v [B,d_f]``, ``f_a [B,d_f]`` (unit length), ``trace_logits_v [B,K_v]``,
    ``trace_logits_a [B,K_a]`` (each fingerprint's guess of its own modality's trace).
    """

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        m = cfg.model
        self.fusion = CrossModalFusion(cfg)
        self.fp_v = FingerprintHead(m.d_model, m.d_fingerprint)
        self.fp_a = FingerprintHead(m.d_model, m.d_fingerprint)
        self.trace_v = PrototypeClassifier(m.d_fingerprint, len(VISUAL_TRACES), cfg.loss.fp_scale)
        self.trace_a = PrototypeClassifier(m.d_fingerprint, len(AUDIO_TRACES), cfg.loss.fp_scale)

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        v_seq, z_v = self.visual(frames)
        a_seq, z_a = self.audio(mel)
        emb = self.fusion(v_seq, a_seq)["embedding"]
        f_v, f_a = self.fp_v(z_v), self.fp_a(z_a)
        return {
            **self.heads(emb),
            "z_v": z_v,
            "z_a": z_a,
            "f_v": f_v,
            "f_a": f_a,
            "trace_logits_v": self.trace_v(f_v),
            "trace_logits_a": self.trace_a(f_a),
        }

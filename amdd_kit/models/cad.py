"""CAD, the comparison method: cross-modal Alignment and Distillation (Du et al., 2025).

The CAD paper builds on frozen CLIP (vision) and Whisper (audio) encoders. Their weights are
large, licensed separately and cannot be shipped with (or downloaded by) this kit, so our CAD
uses **the same trainable encoders as AMDD** (ResNet per frame + temporal attention, log-mel
ResNet18). That is also the fair comparison: the two methods then differ only in how they
combine the modalities and in their losses. Our reading (DESIGN.md "CAD")::

    frames --VisualEncoder--> v_seq, z_v [B,d] --visual teacher--> det_logit_v [B], trace_logits_v [B,K_v]
    mel    --AudioEncoder---> a_seq, z_a [B,d] --audio teacher---> det_logit_a [B], trace_logits_a [B,K_a]
    (v_seq, a_seq) --cross-attention alignment--> sync_v [B,d], sync_a [B,d] -> embedding [B,d_e]
    embedding --student heads--> det_logit [B], attr_logits [B,C]

* alignment: each stream attends to the other (:class:`CrossModalFusion`); ``sync_v`` and
  ``sync_a`` are the pooled aligned streams. The loss adds a symmetric KL agreement between the
  two teachers' real/fake predictions on real (in-sync) clips (``amdd_kit.losses.cad_kl``,
  Eq. 7): lips and speech of an in-sync clip should tell the same story.
* distillation: each unimodal teacher learns its own modality's labels (visual: ``video_fake``
  and the visual trace; audio: ``audio_fake`` and the audio trace, ``config.METHOD_TRACES``) and
  their (detached) predictions are distilled into the fused student
  (``amdd_kit.losses.cad_distill``, Eq. 8), which keeps modality-specific evidence alive in the
  fused representation.
* ``f_v``, ``f_a``: each teacher's hidden features, L2-normalised (``[B,d_f]``), so metrics and
  geometry read CAD outputs exactly like AMDD's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AUDIO_TRACES, VISUAL_TRACES, Config
from .amdd import AudioVisualModel
from .fusion import CrossModalFusion


class UnimodalTeacher(nn.Module):
    """Detection + trace from one modality: ``z [B,d] -> (det [B], trace [B,K], f [B,d_f])``.

    One shared hidden layer (``Linear d -> d_f``, GELU, Dropout) feeds both outputs; the hidden
    pre-activation, L2-normalised, is the modality's fingerprint ``f``.
    """

    def __init__(self, d_in: int, d_hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)
        self.drop = nn.Dropout(dropout)
        self.det = nn.Linear(d_hidden, 1)
        self.attr = nn.Linear(d_hidden, n_classes)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.hidden(z)
        x = self.drop(F.gelu(h))
        return self.det(x).squeeze(-1), self.attr(x), F.normalize(h, dim=-1)


class CAD(AudioVisualModel):
    """The CAD model. ``forward(frames [B,T,3,H,W], mel [B,n_mels,S]) -> dict``.

    Keys: the AMDD ones (``det_logit [B]``, ``attr_logits [B,C]``, ``embedding [B,d_e]``,
    ``z_v``, ``z_a`` ``[B,d]``, ``f_v``, ``f_a`` ``[B,d_f]``) plus the teachers'
    ``det_logit_v``, ``det_logit_a`` ``[B]`` (video fake? audio fake?), ``trace_logits_v``
    ``[B,K_v]``, ``trace_logits_a`` ``[B,K_a]``
    and the aligned streams ``sync_v``, ``sync_a`` ``[B,d]``.
    """

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        m = cfg.model
        self.align = CrossModalFusion(cfg)
        self.teacher_v = UnimodalTeacher(m.d_model, m.d_fingerprint, len(VISUAL_TRACES), m.dropout)
        self.teacher_a = UnimodalTeacher(m.d_model, m.d_fingerprint, len(AUDIO_TRACES), m.dropout)

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> dict[str, torch.Tensor]:
        v_seq, z_v = self.visual(frames)
        a_seq, z_a = self.audio(mel)
        al = self.align(v_seq, a_seq)
        emb = al["embedding"]
        det_v, attr_v, f_v = self.teacher_v(z_v)
        det_a, attr_a, f_a = self.teacher_a(z_a)
        return {
            **self.heads(emb),
            "z_v": z_v,
            "z_a": z_a,
            "f_v": f_v,
            "f_a": f_a,
            "det_logit_v": det_v,
            "det_logit_a": det_a,
            "trace_logits_v": attr_v,
            "trace_logits_a": attr_a,
            "sync_v": al["sync_v"],
            "sync_a": al["sync_a"],
        }

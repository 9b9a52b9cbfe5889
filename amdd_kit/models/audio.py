"""Audio stream: a torchvision ResNet18 on the log-mel spectrogram seen as a 1-channel image.

``mel [B,n_mels,S]`` (standardised log-mel; frequency is the image height, time its width)
  -> ``[B,1,n_mels,S]``
  -> ResNet trunk, 1-input-channel ``conv1``, max-pool over **frequency only** ``[B,512,F',S']``
  -> mean over frequency ``F'``, transpose                                  ``[B,S',512]``
  -> linear projection to ``d_model`` + learned positional embedding       ``[B,S',d]``
  -> attention pooling                                                     ``[B,d]``

Time stride: ResNet18 halves the resolution five times (conv1, max-pool, layer2-4), which
would leave ``S' = 2`` steps for the 64 mel frames (0.64 s) of a clip: too few for the
cross-modal attention to line audio up with the frames. Our max-pool (3x3, stride (2, 1))
halves the frequency axis only, so the trunk has time stride 16 and ``S' = ceil(S / 16)``: 4
steps of 160 ms for ``S = 64``. Pooling frequency as the ImageNet stem does keeps the cost of
layers 1-4 at half of what skipping the pool altogether would (a third of the audio stream's
share of a tiny training step).

With ``pretrained=True`` the ImageNet weights are loaded first and the new ``conv1``
weight is the RGB ``conv1`` weight averaged over its 3 input channels (a grey image gives the
same first-layer response as before).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import Config
from .heads import AttentionPool
from .visual import ResNetStream, load_resnet


def grey_conv1(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of an RGB ``conv1`` taking 1 input channel; weight = mean over the RGB channels."""
    new = nn.Conv2d(1, conv.out_channels, kernel_size=conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.mean(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def audio_steps(n_mel_frames: int) -> int:
    """``S'``, the number of time steps the audio trunk leaves for ``S`` mel frames (stride 16)."""
    return math.ceil(n_mel_frames / 16)


class AudioEncoder(ResNetStream):
    """Log-mel ResNet18. ``mel [B,n_mels,S] -> (seq [B,S',d], pooled [B,d])``, ``S' = ceil(S/16)``.

    ``S`` may be at most ``cfg.data.mel_frames`` (the length of the positional embedding).
    (``self.init``, ``self.trunk``, ``self.pos``: :class:`~amdd_kit.models.visual.ResNetStream`.)
    """

    def __init__(self, cfg: Config):
        m = cfg.model
        trunk, init = load_resnet(m.audio_backbone, m.pretrained)
        trunk.conv1 = grey_conv1(trunk.conv1)
        # halve frequency, keep time resolution (see module docstring)
        trunk.maxpool = nn.MaxPool2d(kernel_size=3, stride=(2, 1), padding=1)
        super().__init__(trunk, init, m.audio_backbone, m, audio_steps(cfg.data.mel_frames))
        self.norm = nn.LayerNorm(m.d_model)
        self.pool = AttentionPool(m.d_model)

    def time_features(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B,n_mels,S] -> [B,S',F]``: trunk feature maps averaged over frequency."""
        if mel.dim() != 3:
            raise ValueError(f"mel must be [B,n_mels,S], got {tuple(mel.shape)}")
        x = mel.unsqueeze(1)                                   # [B,1,n_mels,S]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        x = t.layer4(t.layer3(t.layer2(t.layer1(x))))          # [B,F,F',S']
        return x.mean(dim=2).transpose(1, 2)                   # [B,S',F]

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.proj(self.time_features(mel))                 # [B,S',d]
        S = x.shape[1]
        if S > self.pos.shape[1]:
            raise ValueError(f"mel has {mel.shape[-1]} frames ({S} steps) but the model was "
                             f"built for at most {self.pos.shape[1] * 16} (cfg.data.mel_frames)")
        seq = self.norm(x + self.pos[:, :S])
        return seq, self.pool(seq)

"""Visual stream: a torchvision ResNet on every frame, then temporal self-attention.

``frames [B,T,3,H,W]`` (ImageNet-normalised floats)
  -> ResNet trunk per frame (fc removed; channels_last memory format)  ``[B*T, F]``
     (``model.visual_stem``: torchvision's 7x7 stride-2 stem; a lossless space-to-depth stem,
     :func:`space_to_depth_stem`; or -- tiny -- a Haar wavelet stem, :class:`HaarStem`)
     (F = 512 for resnet18, 2048 for resnet50)
  -> linear projection to ``d_model`` + learned positional embedding      ``[B,T,d]``
  -> ``n_temporal_layers`` of multi-head self-attention over time         ``[B,T,d]``
  -> attention pooling                                                    ``[B,d]``

:func:`load_resnet` is shared with the audio stream: it builds a torchvision ResNet with random
weights, or with the ImageNet weights through torchvision's weights API (``ResNet50_Weights``
etc.), failing with a clear message that names the file to place in the torch cache when the
weights cannot be downloaded (offline lab rooms).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from ..config import Config
from .heads import AttentionPool

RANDOM_INIT = "random init"


def weights_file(name: str) -> Path:
    """Where torch looks for the cached ImageNet weights of torchvision model ``name``.

    ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``; it follows
    ``TORCH_HOME``.
    """
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def load_resnet(name: str, pretrained: bool) -> tuple[nn.Module, str]:
    """A torchvision ResNet (``"resnet18"``, ``"resnet50"``, ...) and a phrase naming its init.

    ``pretrained=False``: random initialisation, silently. ``pretrained=True``: the ``DEFAULT``
    ImageNet weights through ``weights.get_state_dict`` (reads the torch cache first, downloads
    otherwise). Raises ``RuntimeError`` naming the cache file to provide when that fails, and
    ``ValueError`` for a name that is not a torchvision ResNet.
    """
    if not name.startswith("resnet") or name not in torchvision.models.list_models():
        raise ValueError(f"unknown backbone {name!r}; use a torchvision ResNet, "
                         f"e.g. 'resnet18' or 'resnet50'")
    builder = getattr(torchvision.models, name)
    model = builder(weights=None)
    if not pretrained:
        return model, RANDOM_INIT
    weights = torchvision.models.get_model_weights(name).DEFAULT
    target = weights_file(name)
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as exc:  # offline (URLError), corrupt cache file, ...
        where = ("exists but could not be read" if target.exists() else "is missing")
        raise RuntimeError(
            f"could not load the ImageNet weights of {name} ({weights}): {exc!r}. "
            f"The cache file {target} {where}. On a machine without internet, download "
            f"{weights.url} elsewhere and copy it to exactly that path, or set "
            f"model.pretrained=False for a random init.") from exc
    model.load_state_dict(state)
    return model, f"ImageNet ({weights})"


def resnet_trunk(model: nn.Module) -> tuple[nn.Module, int]:
    """Remove the classifier of a torchvision ResNet: ``(model with fc = Identity, F)``."""
    n_features = model.fc.in_features
    model.fc = nn.Identity()
    return model, n_features


STEMS = ("resnet", "space_to_depth", "haar")


def space_to_depth_stem(out_channels: int = 64) -> nn.Module:
    """``[N,3,H,W] -> [N,out_channels,H/2,W/2]``: a lossless 2x2 pixel unshuffle (12 channels)
    and a 3x3 conv, in place of a ResNet's 7x7 stride-2 ``conv1``.

    The output has the shape ``conv1`` gives, so the rest of the ResNet (bn1, max-pool, layers)
    is unchanged. Each 2x2 block of pixels becomes 12 channels at one position, so a 2-px
    checkerboard or a one-pixel seam is a plain per-position pattern for the first conv instead
    of something a strided 7x7 filter must learn to demodulate (the "Focus"/space-to-depth stem
    of TResNet and YOLOv5). With random init on 64 px faces it learns the synthetic fsgan trace
    in about 100 steps where torchvision's stem needs several hundred.
    """
    return nn.Sequential(nn.PixelUnshuffle(2),
                         nn.Conv2d(12, out_channels, kernel_size=3, padding=1, bias=False))


def haar_matrix(channels: int = 3) -> torch.Tensor:
    """The orthonormal 2x2 Haar transform of ``PixelUnshuffle(2)``'s output, ``[4C, 4C]``.

    ``PixelUnshuffle(2)`` puts the 2x2 block ``[[a, b], [c, d]]`` of colour ``k`` into channels
    ``4k .. 4k+3`` in the order ``a, b, c, d``. Row ``4k + i`` of the result is band ``i`` of
    colour ``k``: ``LL = (a+b+c+d)/2`` (the block's mean), ``LH = (a+b-c-d)/2`` (a change
    between rows), ``HL = (a-b+c-d)/2`` (between columns) and ``HH = (a-b-c+d)/2`` -- a 2-px
    checkerboard is pure HH. Orthonormal: its transpose inverts it.
    """
    h = torch.tensor([[1., 1., 1., 1.], [1., 1., -1., -1.], [1., -1., 1., -1.],
                      [1., -1., -1., 1.]]) / 2
    return torch.block_diag(*[h] * channels)


class HaarStem(nn.Module):
    """``[N,3,H,W] -> [N,out_channels,H/2,W/2]``: a one-level Haar wavelet transform (plus
    the detail bands' magnitudes), a BatchNorm per channel, and a 3x3 conv, in place of a
    ResNet's ``conv1``.

    ``PixelUnshuffle(2)`` and the fixed :func:`haar_matrix` split every 2x2 block into its
    mean (LL) and three detail bands (LH, HL, HH), per colour: 12 channels at half resolution,
    lossless. The forensic traces live in the detail bands (an up-sampling checkerboard is HH, a
    blend seam or a re-rendered mouth shows as missing LH/HL detail), which carry a few percent
    of a face's energy: the BatchNorm gives every band unit variance so the first learned conv
    sees them at full weight. The magnitudes ``|LH|, |HL|, |HH|`` per colour go in next to the
    signed bands (21 channels in all): a trace's sign depends on where the crop starts (a
    one-pixel shift flips a checkerboard's HH), its magnitude does not.
    """

    def __init__(self, out_channels: int = 64, channels: int = 3):
        super().__init__()
        self.unshuffle = nn.PixelUnshuffle(2)
        bands = 4 * channels
        self.register_buffer("haar", haar_matrix(channels).view(bands, bands, 1, 1))
        n_in = bands + 3 * channels  # signed bands + detail magnitudes (see features)
        self.norm = nn.BatchNorm2d(n_in)
        self.conv = nn.Conv2d(n_in, out_channels, kernel_size=3, padding=1, bias=False)

    def bands(self, x: torch.Tensor) -> torch.Tensor:
        """``[N,C,H,W] -> [N,4C,H/2,W/2]``: the Haar bands (LL, LH, HL, HH per colour)."""
        return nn.functional.conv2d(self.unshuffle(x), self.haar.to(x.dtype))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N,C,H,W] -> [N,7C,H/2,W/2]``: the ``4C`` signed bands, then the ``3C`` detail-band
        magnitudes ``|LH|, |HL|, |HH|`` per colour (phase-free: the same for a pattern and its
        one-pixel shift)."""
        b = self.bands(x)
        n, _, h, w = b.shape
        detail = b.view(n, -1, 4, h, w)[:, :, 1:].abs().reshape(n, -1, h, w)
        return torch.cat([b, detail], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(self.features(x)))


class ResNetStream(nn.Module):
    """What both streams share: a torchvision ResNet trunk without its classifier
    (channels_last when ``m.channels_last``), a projection ``F -> d_model`` and a learned
    positional embedding ``[1, n_steps, d_model]``. ``self.init`` names the trunk's init."""

    def __init__(self, trunk: nn.Module, init: str, backbone: str, m, n_steps: int):
        super().__init__()
        self.trunk, n_features = resnet_trunk(trunk)
        self.init, self.backbone, self.channels_last = init, backbone, m.channels_last
        if self.channels_last:
            self.trunk = self.trunk.to(memory_format=torch.channels_last)
        self.proj = nn.Linear(n_features, m.d_model)
        self.pos = nn.Parameter(torch.zeros(1, n_steps, m.d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)


class VisualEncoder(ResNetStream):
    """Per-frame ResNet + temporal attention. ``frames [B,T,3,H,W] -> (seq [B,T,d], pooled [B,d])``.

    ``T`` may be at most ``cfg.data.n_frames`` (the length of the positional embedding). ``self.init``: see :class:`ResNetStream`.
    """

    def __init__(self, cfg: Config):
        m = cfg.model
        trunk, init = load_resnet(m.visual_backbone, m.pretrained)
        if m.visual_stem not in STEMS:
            raise ValueError(f"unknown model.visual_stem {m.visual_stem!r}; choose from {STEMS}")
        if m.visual_stem != "resnet":
            out = trunk.conv1.out_channels
            trunk.conv1 = HaarStem(out) if m.visual_stem == "haar" else space_to_depth_stem(out)
            if m.pretrained:
                init += f"; its {m.visual_stem} stem starts from scratch"
        super().__init__(trunk, init, m.visual_backbone, m, cfg.data.n_frames)
        layer = nn.TransformerEncoderLayer(m.d_model, m.n_heads, dim_feedforward=2 * m.d_model,
                                           dropout=m.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, m.n_temporal_layers,
                                              enable_nested_tensor=False)
        self.norm = nn.LayerNorm(m.d_model)
        self.pool = AttentionPool(m.d_model)
        # training sees a random, ordered subset of train_frames of the T frames of each batch
        # (each keeps its own positional embedding); evaluation sees all T (TSN-style sparse
        # sampling, Wang et al. 2016). The per-frame traces are in every frame, so half the
        # frames carry the same evidence at half the cost of the trunk, the bulk of a step.
        self.train_frames = m.train_frames

    @property
    def gradcam_layer(self) -> nn.Module:
        """The trunk's last residual block (``layer4``): the usual Grad-CAM target."""
        return self.trunk.layer4

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,T,3,H,W] -> [B,T,F]``: the ResNet trunk applied to each frame."""
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be [B,T,3,H,W], got {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        x = frames.reshape(B * T, *frames.shape[2:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.trunk(x).reshape(B, T, -1)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = frames.shape[1]
        if T > self.pos.shape[1]:
            raise ValueError(f"clip has {T} frames but the model was built for at most "
                             f"{self.pos.shape[1]} (cfg.data.n_frames)")
        pos = self.pos[:, :T]
        if self.training and 0 < self.train_frames < T:  # sparse frame sampling (see __init__)
            keep = torch.randperm(T, device=frames.device)[:self.train_frames].sort().values
            frames, pos = frames[:, keep], pos[:, keep]
        x = self.proj(self.frame_features(frames)) + pos   # [B,T,d] (T = train_frames in training)
        seq = self.norm(self.temporal(x))                  # [B,T,d]
        return seq, self.pool(seq)

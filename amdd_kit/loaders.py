"""fastai DataLoaders over the clip store (memory-mapped; encoded frames decoded in workers).

Items leave the store as compact integers (frames uint8 ``[T,3,H,W]``, mel float16
``[n_mels,S]``) and are only turned into float, normalised and augmented *after* the batch is
on the device (GPU on a CUDA machine), as fastai ``after_batch`` transforms:

1. :class:`ToFloat` (train and valid): frames -> [0,1]; mel -> per-clip standardised
   (zero mean, unit variance over the whole clip; removes recording level, keeps spectral shape).
2. :class:`AVAugment` (train only): integer-pixel random crop (pad 4 + crop; no resampling,
   which would wash out up-sampling checkerboards) and horizontal flip, the same for every
   frame of a clip; per-clip brightness/contrast jitter; SpecAugment time and frequency masks.
3. :class:`NormalizeFrames` (train and valid): ImageNet mean/std, as torchvision ResNets expect.

A batch is ``(frames [B,T,3,H,W] float, mel [B,n_mels,S] float, label [B], method_idx [B])``;
the first two are the model's inputs (``n_inp = 2``), the last two the loss targets.

Inference uses the same transforms (:func:`input_transforms`, 1 and 3) on a DataLoader of
inputs only (:func:`inference_dataloader`), which ``Learner.get_preds`` runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.vision.core import imagenet_stats
from torchaudio.transforms import FrequencyMasking, TimeMasking
from fasttransform import ItemTransform

from .config import Config
from .data.store import open_frames


class ClipDataset(torch.utils.data.Dataset):
    """Clips of a store, by clip index. Opens the memmaps lazily (cheap to send to workers).

    ``ds[i] -> (frames uint8 [T,3,H,W], mel float16 [n_mels,S], label int64, method_idx int64)``

    A store with ``frame_codec`` png/jpeg is decoded here, in the DataLoader worker, on the CPU
    (OpenCV, about 0.2 ms per 224 px JPEG frame); use ``num_workers`` > 0 to keep a GPU fed
    (``benchmarks/bench_store.py`` prints clips/s per worker).
    """

    n_inp = 2  # tells fastai: two model inputs, then the targets

    def __init__(self, store, indices: Sequence[int], split_idx: int | None = None):
        # fastai applies a transform whose ``split_idx`` is set (AVAugment: 0) only to a
        # dataset with the same ``split_idx``; without it, training batches are never augmented
        self.split_idx = split_idx
        self.path = Path(store.path)
        self.indices = np.asarray(indices, dtype=np.int64)
        m = store.manifest
        self.labels = m["clip_label"].to_numpy(dtype=np.int64)
        self.methods = m["method_idx"].to_numpy(dtype=np.int64)
        self._frames = self._mels = None

    def _open(self):
        if self._frames is None:
            self._frames = open_frames(self.path)  # raw memmap or png/jpeg shards, by its config
            self._mels = np.load(self.path / "mels.npy", mmap_mode="r")

    def __getstate__(self):  # do not pickle open memmaps into worker processes
        d = dict(self.__dict__)
        d["_frames"] = d["_mels"] = None
        return d

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        self._open()
        j = int(self.indices[i])
        f = self._frames[j]  # a memmap view (raw) or a freshly decoded array (png/jpeg)
        return (torch.from_numpy(np.array(f) if isinstance(f, np.memmap) else f),
                torch.from_numpy(np.array(self._mels[j])),
                torch.tensor(self.labels[j]), torch.tensor(self.methods[j]))


def standardise_mel(mel: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per-clip standardisation of log-mels ``[B,n_mels,S]`` (finite even for digital silence)."""
    mel = mel.float()
    mean = mel.mean(dim=(-2, -1), keepdim=True)
    std = mel.std(dim=(-2, -1), keepdim=True)
    return (mel - mean) / (std + eps)


def normalize_frames(frames01: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation (fastai's ``imagenet_stats``) of frames in [0,1], ``[B,T,3,H,W]``."""
    mean = frames01.new_tensor(imagenet_stats[0]).view(1, 1, 3, 1, 1)
    std = frames01.new_tensor(imagenet_stats[1]).view(1, 1, 3, 1, 1)
    return (frames01 - mean) / std


class ToFloat(ItemTransform):
    """uint8 frames -> float in [0,1]; float16 mel -> per-clip standardised float32."""

    order = 0

    def encodes(self, b):
        frames, mel, *ys = b
        return (frames.float() / 255.0, standardise_mel(mel), *ys)


class AVAugment(ItemTransform):
    """Training-only batch augmentation on the device (see module docstring)."""

    order = 1
    split_idx = 0  # fastai: apply on the training set only

    def __init__(self, pad: int = 4, jitter: float = 0.15, time_mask: int = 8,
                 freq_mask: int = 8):
        super().__init__()
        self.pad, self.jitter = pad, jitter
        self.time_mask, self.freq_mask = time_mask, freq_mask
        # iid_masks: an independent mask for every clip of the batch (width drawn in [0, size))
        self.masks = (TimeMasking(time_mask, iid_masks=True),
                      FrequencyMasking(freq_mask, iid_masks=True))

    def encodes(self, b):
        frames, mel, *ys = b
        return (self.augment_frames(frames), self.spec_augment(mel), *ys)

    def augment_frames(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,T,3,H,W]`` in [0,1] -> same shape; one random crop/flip/jitter per clip."""
        B, T, C, H, W = x.shape
        p = self.pad
        dev = x.device
        if p > 0:
            xp = torch.nn.functional.pad(x.reshape(B, T * C, H, W), (p, p, p, p),
                                         mode="replicate").reshape(B, T, C, H + 2 * p, W + 2 * p)
            oy = torch.randint(0, 2 * p + 1, (B,), device=dev)
            ox = torch.randint(0, 2 * p + 1, (B,), device=dev)
            rows = (oy[:, None] + torch.arange(H, device=dev))[:, :, None]   # [B,H,1]
            cols = (ox[:, None] + torch.arange(W, device=dev))[:, None, :]   # [B,1,W]
            bidx = torch.arange(B, device=dev)[:, None, None]
            x = xp.permute(0, 3, 4, 1, 2)[bidx, rows, cols].permute(0, 3, 4, 1, 2)  # [B,T,C,H,W]
        flip = torch.rand(B, device=dev) < 0.5
        x = torch.where(flip.view(B, 1, 1, 1, 1), x.flip(-1), x)
        if self.jitter > 0:
            gain = 1 + (torch.rand(B, 1, 1, 1, 1, device=dev) * 2 - 1) * self.jitter
            bias = (torch.rand(B, 1, 1, 1, 1, device=dev) * 2 - 1) * self.jitter / 2
            mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
            x = ((x - mean) * gain + mean + bias).clamp(0, 1)
        return x.contiguous()

    def spec_augment(self, mel: torch.Tensor) -> torch.Tensor:
        """SpecAugment (Park et al. 2019) with torchaudio's ``TimeMasking`` and
        ``FrequencyMasking``: one time and one frequency mask per clip, set to 0 (the clip mean
        after standardisation). ``[B,F,S]`` -> same shape."""
        for mask in self.masks:
            mel = mask(mel, 0.0)
        return mel


class NormalizeFrames(ItemTransform):
    """ImageNet mean/std on frames (what torchvision ResNets expect)."""

    order = 2

    def encodes(self, b):
        frames, *rest = b
        return (normalize_frames(frames), *rest)


def make_dataloaders(store, cfg: Config, split, device: torch.device | str | None = None
                     ) -> DataLoaders:
    """fastai DataLoaders for the ``train`` and ``valid`` clips of ``split``.

    ``split``: a sequence of ``"train"|"valid"|"test"`` per store clip (see
    :func:`amdd_kit.data.splits.identity_split`). Normalisation and augmentation run after the
    batch is on ``device`` (default: CUDA when available).
    """
    split = np.asarray(split)
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "valid")
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"need training and validation clips, got {len(tr)} and {len(va)}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    tc = cfg.train
    after = input_transforms()
    if tc.augment:  # fastai orders the pipeline by ``order``: ToFloat, AVAugment, NormalizeFrames
        after.append(AVAugment(time_mask=tc.spec_time_mask, freq_mask=tc.spec_freq_mask))
    cuda = torch.device(device).type == "cuda"
    return DataLoaders.from_dsets(
        ClipDataset(store, tr, split_idx=0), ClipDataset(store, va, split_idx=1),
        bs=tc.batch_size, device=torch.device(device), after_batch=after,
        num_workers=tc.num_workers, pin_memory=cuda,
    )  # fastai's defaults: shuffle + drop_last for train only


# -- inference: the same transforms, in order, without targets ----------------------------------
def input_transforms() -> list[ItemTransform]:
    """The ``after_batch`` transforms every batch gets, training or not: :class:`ToFloat`, then
    :class:`NormalizeFrames` (training adds :class:`AVAugment` between them)."""
    return [ToFloat(), NormalizeFrames()]


class ClipInputs(torch.utils.data.Dataset):
    """Model inputs of clips held in arrays (numpy, torch, or a store's ``frames``/``mels``).

    ``ds[i] -> (frames uint8 [T,3,H,W], mel float16 [n_mels,S])`` for clip ``indices[i]``
    (default: every clip, in order). No targets: a batch is the model's two inputs.
    """

    n_inp = 2

    def __init__(self, frames, mels, indices: Sequence[int] | None = None):
        if len(frames) != len(mels):
            raise ValueError(f"{len(frames)} clips of frames but {len(mels)} mels")
        self.frames, self.mels = frames, mels
        self.indices = np.arange(len(frames)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        return (torch.as_tensor(np.array(self.frames[j])),   # a copy: memmaps are read-only
                torch.as_tensor(np.array(self.mels[j])))


def inference_dataloader(frames, mels, indices: Sequence[int] | None = None, bs: int = 32,
                         device: torch.device | str | None = None) -> TfmdDL:
    """A fastai DataLoader of model inputs (:class:`ClipInputs`) in their order, with the
    validation batches' ``after_batch`` transforms run on ``device``: what
    :func:`amdd_kit.inference.forward_arrays` hands to ``Learner.get_preds``.

    (``dls.test_dl`` would need fastai ``Datasets``; the store's loaders are plain torch
    datasets, so the test loader is built here from the same transforms.)
    """
    return TfmdDL(ClipInputs(frames, mels, indices), bs=bs, shuffle=False, drop_last=False,
                  num_workers=0, device=None if device is None else torch.device(device),
                  after_batch=input_transforms())


def to_model_inputs(frames_u8, mels_f16,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of clips -> model inputs, through :func:`inference_dataloader` (for Grad-CAM,
    which needs gradients and so calls the model itself).

    ``frames_u8`` uint8 ``[B,T,3,H,W]``, ``mels_f16`` ``[B,n_mels,S]`` (numpy or tensor)
    -> (frames float ``[B,T,3,H,W]`` ImageNet-normalised, mel float ``[B,n_mels,S]``), on
    ``device``.
    """
    frames, mels = inference_dataloader(frames_u8, mels_f16, bs=len(frames_u8),
                                        device=device).one_batch()
    return frames, mels

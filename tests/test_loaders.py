"""DataLoaders over a clip store: shapes, dtypes, device-side transforms, train-only augment."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from amdd_kit.config import get_config
from amdd_kit.loaders import (AVAugment, ClipDataset, make_dataloaders, standardise_mel,
                              to_model_inputs)


def _store(tmp_path, n=24, T=8, H=64, F=64, S=64, seed=0):
    rng = np.random.default_rng(seed)
    np.save(tmp_path / "frames.npy", rng.integers(0, 256, (n, T, 3, H, H), dtype=np.uint8))
    np.save(tmp_path / "mels.npy", rng.normal(-5, 2, (n, F, S)).astype(np.float16))
    m = pd.DataFrame({"clip_id": np.arange(n), "clip_label": np.arange(n) % 2,
                      "method_idx": np.arange(n) % 7})
    return SimpleNamespace(path=tmp_path, manifest=m)


def test_dataset_items_are_compact_and_match_the_store(tmp_path):
    store = _store(tmp_path)
    ds = ClipDataset(store, [3, 5])
    frames, mel, label, method = ds[1]
    assert frames.dtype == torch.uint8 and frames.shape == (8, 3, 64, 64)
    assert mel.dtype == torch.float16 and mel.shape == (64, 64)
    assert torch.equal(frames, torch.from_numpy(np.load(tmp_path / "frames.npy")[5]))
    assert int(label) == 1 and int(method) == 5


def test_dataloaders_batches_are_normalised_floats(tmp_path):
    store = _store(tmp_path)
    cfg = get_config("tiny", {"train.batch_size": 4})
    split = np.array(["train"] * 16 + ["valid"] * 8)
    dls = make_dataloaders(store, cfg, split, device="cpu")
    frames, mel, label, method = dls.valid.one_batch()
    assert dls.n_inp == 2
    assert frames.dtype == torch.float32 and frames.shape == (4, 8, 3, 64, 64)
    assert mel.shape == (4, 64, 64)
    # validation batches equal the inference path exactly (no augmentation)
    idx = dls.valid.dataset.indices[:4]
    ref_f, ref_m = to_model_inputs(np.load(tmp_path / "frames.npy")[idx],
                                   np.load(tmp_path / "mels.npy")[idx], cfg)
    assert torch.allclose(frames, ref_f, atol=1e-5) and torch.allclose(mel, ref_m, atol=1e-4)
    assert abs(float(mel.mean())) < 1e-3


def test_augment_keeps_pixel_grid_and_masks_spectrogram():
    torch.manual_seed(0)
    aug = AVAugment(pad=4, jitter=0.0, time_mask=8, freq_mask=8)
    x = torch.rand(3, 2, 3, 16, 16)
    y = aug.augment_frames(x)
    assert y.shape == x.shape
    # integer crops and flips only move pixels: every output value exists in the input clip
    for b in range(3):
        assert torch.isin(y[b], x[b]).all()
    # the same crop and flip for every frame of a clip: identical frames stay identical
    same = torch.rand(3, 1, 3, 16, 16).expand(3, 4, 3, 16, 16).contiguous()
    z = aug.augment_frames(same)
    assert torch.equal(z[:, 0], z[:, 3])
    mel = torch.randn(4, 64, 64) + 5
    masked = aug.spec_augment(mel)
    assert masked.shape == mel.shape and (masked == 0).any()
    assert (masked[masked != 0] == mel[masked != 0]).all()


def test_standardise_mel_is_finite_on_digital_silence():
    silent = torch.full((2, 64, 64), -13.8)
    out = standardise_mel(silent)
    assert torch.isfinite(out).all() and out.abs().max() < 0.01

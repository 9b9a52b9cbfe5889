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
    """A raw store (frames in ``frames.npy``) with its ``data_config.json``, as ``pack`` writes."""
    import dataclasses
    import json

    from amdd_kit.config import DataConfig
    rng = np.random.default_rng(seed)
    cfg = DataConfig(n_frames=T, image_size=H, n_mels=F)
    (tmp_path / "data_config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
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


def test_the_store_config_says_raw_or_encoded_not_the_files_present(tmp_path):
    """ClipDataset and ClipStore tell a store's format the same way, from its config
    (``store.frames_file``): a stray ``frames_index.npy`` beside a raw store's ``frames.npy``
    changes nothing, and a store whose config says jpeg never serves a leftover ``frames.npy``
    (an earlier raw build in the folder) when its index is missing."""
    import dataclasses
    import json

    import pytest

    from amdd_kit.config import DataConfig
    from amdd_kit.data.store import frames_file, open_frames
    from amdd_kit.data.workdir import read_data_config

    store = _store(tmp_path)
    np.save(tmp_path / "frames_index.npy", np.zeros((24, 8, 3), np.int64))
    assert frames_file(read_data_config(tmp_path)) == "frames.npy"
    assert isinstance(open_frames(tmp_path), np.memmap)
    frames, *_ = ClipDataset(store, [5])[0]
    assert torch.equal(frames, torch.from_numpy(np.load(tmp_path / "frames.npy")[5]))

    jpeg = DataConfig(n_frames=8, image_size=64, n_mels=64, frame_codec="jpeg")
    (tmp_path / "data_config.json").write_text(json.dumps(dataclasses.asdict(jpeg)))
    (tmp_path / "frames_index.npy").unlink()
    assert frames_file(read_data_config(tmp_path)) == "frames_index.npy"
    with pytest.raises(FileNotFoundError, match="frames_index.npy"):
        ClipDataset(store, [5])[0]


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
                                   np.load(tmp_path / "mels.npy")[idx])
    assert torch.allclose(frames, ref_f, atol=1e-5) and torch.allclose(mel, ref_m, atol=1e-4)
    assert abs(float(mel.mean())) < 1e-3


def test_training_batches_are_augmented_and_validation_batches_are_not(tmp_path):
    """fastai runs a transform with ``split_idx=0`` only on a dataset that says it is the
    training set: the loaders must say so, or AVAugment silently never runs."""
    store = _store(tmp_path)
    split = np.array(["train"] * 16 + ["valid"] * 8)
    frames = np.load(tmp_path / "frames.npy")
    for augment in (True, False):
        cfg = get_config("tiny", {"train.batch_size": 16, "train.augment": augment})
        dls = make_dataloaders(store, cfg, split, device="cpu")
        dls.train.shuffle = False
        torch.manual_seed(0)
        got, *_ = dls.train.one_batch()
        ref, _ = to_model_inputs(frames[dls.train.dataset.indices[:16]],
                                 np.load(tmp_path / "mels.npy")[:16])
        changed = (got - ref).abs().amax(dim=(1, 2, 3, 4)) > 1e-3   # per clip
        assert bool(changed.any()) == augment, (augment, changed)


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


def _encoded_store(tmp_path, codec="png", n=12, T=8, H=64, F=64, S=64, seed=1):
    """A store with frames in PNG/JPEG shards (one record per 3 clips) and its raw frames."""
    import dataclasses
    import json

    from amdd_kit.config import DataConfig
    from amdd_kit.data import shards
    from amdd_kit.data.codec import encode_frames
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, T, 3, H, H), dtype=np.uint8)
    mels = rng.normal(-5, 2, (n, F, S)).astype(np.float16)
    cfg = DataConfig(n_frames=T, image_size=H, n_mels=F, frame_codec=codec)
    (tmp_path / "data_config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    w = shards.ShardWriter(tmp_path, shard_bytes=40_000)
    index = np.zeros((n, T, 3), np.int64)
    for v in range(0, n, 3):
        rec = w.append(f"v{v}", encode_frames(frames[v:v + 3], codec), mels[v:v + 3],
                       np.zeros(3), {})
        index[v:v + 3, :, 0] = rec.shard
        index[v:v + 3, :, 1] = rec.frame_offsets().reshape(3, T)
        index[v:v + 3, :, 2] = np.asarray(rec.header["sizes"]).reshape(3, T)
    np.save(tmp_path / "frames_index.npy", index)
    np.save(tmp_path / "mels.npy", mels)
    m = pd.DataFrame({"clip_id": np.arange(n), "clip_label": np.arange(n) % 2,
                      "method_idx": np.arange(n) % 7})
    return SimpleNamespace(path=tmp_path, manifest=m), frames, mels


def test_encoded_store_items_are_decoded_in_the_dataset(tmp_path):
    store, frames, mels = _encoded_store(tmp_path)
    from amdd_kit.data import shards
    assert len(shards.shard_paths(tmp_path)) > 1
    ds = ClipDataset(store, [7, 2, 11])
    f, mel, label, method = ds[0]
    assert f.dtype == torch.uint8 and f.shape == (8, 3, 64, 64)
    assert torch.equal(f, torch.from_numpy(frames[7]))  # PNG: lossless
    assert torch.equal(mel, torch.from_numpy(mels[7])) and int(label) == 1 and int(method) == 0
    # workers get a pickled dataset without open shard maps, and decode the same clips
    dl = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    fb, *_ = next(iter(dl))
    assert torch.equal(fb, torch.from_numpy(frames[[7, 2, 11]]))


def test_encoded_store_dataloaders(tmp_path):
    store, frames, mels = _encoded_store(tmp_path, codec="jpeg")
    cfg = get_config("tiny", {"train.batch_size": 4})
    dls = make_dataloaders(store, cfg, np.array(["train"] * 8 + ["valid"] * 4), device="cpu")
    f, mel, *_ = dls.valid.one_batch()
    assert f.shape == (4, 8, 3, 64, 64) and f.dtype == torch.float32
    idx = dls.valid.dataset.indices[:4]
    from amdd_kit.data.codec import roundtrip
    ref_f, ref_m = to_model_inputs(roundtrip(frames[idx], "jpeg"), mels[idx])
    assert torch.allclose(f, ref_f, atol=1e-5) and torch.allclose(mel, ref_m, atol=1e-4)


def test_normalize_frames_uses_the_imagenet_statistics_it_always_used():
    """``normalize_frames`` reads fastai's ``imagenet_stats``; the numbers it replaced, written
    out here, must give the same frames."""
    from amdd_kit.loaders import normalize_frames

    x = torch.rand(2, 3, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 1, 3, 1, 1)
    assert torch.equal(normalize_frames(x), (x - mean) / std)

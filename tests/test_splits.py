"""Identity-disjoint splits and the unseen-generator protocol."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amdd_kit.data.splits import (check_identity_disjoint, cross_dataset_protocol,
                                  identity_split, split_table)

FAKES = ("rtvc", "faceswap", "fsgan", "wav2lip")


def _manifest(n_ids: int = 30, seed: int = 0) -> pd.DataFrame:
    """Clips of ``n_ids`` identities: 2 real clips each, 1-3 fakes of random methods; a few
    identities have only fakes or only reals."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        ident = f"id{i:05d}"
        n_real = 0 if i % 10 == 3 else 2
        n_fake = 0 if i % 10 == 7 else int(rng.integers(1, 4))
        rows += [{"identity": ident, "method": "real", "label": 0}] * n_real
        rows += [{"identity": ident, "method": str(rng.choice(FAKES)), "label": 1}
                 for _ in range(n_fake)]
    return pd.DataFrame(rows)


def test_identity_disjoint_and_stratified():
    m = _manifest()
    s = identity_split(m, 0.2, 0.2, seed=1)
    assert s.index.equals(m.index) and set(s) == {"train", "valid", "test"}
    check_identity_disjoint(m, s)
    per_id = s.groupby(m["identity"]).nunique()
    assert (per_id == 1).all()
    for name in ("train", "valid", "test"):
        labels = set(m.loc[s == name, "label"])
        assert labels == {0, 1}, f"{name} lacks a class"
    n_ids = m.groupby(s)["identity"].nunique()
    assert 4 <= n_ids["test"] <= 8 and 4 <= n_ids["valid"] <= 8 and n_ids["train"] >= 14


def test_deterministic_and_seed_dependent():
    m = _manifest()
    a = identity_split(m, 0.2, 0.2, seed=3)
    assert a.equals(identity_split(m, 0.2, 0.2, seed=3))
    assert not a.equals(identity_split(m, 0.2, 0.2, seed=4))


def test_holdout_methods_only_in_test():
    m = _manifest()
    s = identity_split(m, 0.2, 0.2, seed=0, holdout_methods=("fsgan",))
    assert (s[m["method"] == "fsgan"] == "test").all()
    assert not m.loc[s.isin(["train", "valid"]), "method"].eq("fsgan").any()
    check_identity_disjoint(m, s, ignore_methods=("fsgan",))
    strict = identity_split(m, 0.2, 0.2, seed=0, holdout_methods=("fsgan",), strict_holdout=True)
    check_identity_disjoint(m, strict)  # nothing straddles at all
    assert set(strict[m["method"] == "fsgan"]) <= {"test", "unused"}
    assert (strict[m["method"] != "fsgan"] == s[m["method"] != "fsgan"]).all()


def test_check_identity_disjoint_catches_leaks():
    m = _manifest(6)
    s = pd.Series("train", index=m.index)
    s.iloc[0] = "test"  # one clip of id00000 in test, the rest in train
    with pytest.raises(AssertionError, match="id00000"):
        check_identity_disjoint(m, s)


def test_bad_arguments():
    m = _manifest(6)
    with pytest.raises(ValueError):
        identity_split(m, 0.6, 0.5, seed=0)
    with pytest.raises(ValueError, match="holdout"):
        identity_split(m, 0.2, 0.2, seed=0, holdout_methods=("nope",))


def test_tiny_manifest_keeps_a_training_identity():
    m = _manifest(3)
    s = identity_split(m, 0.2, 0.2, seed=0)
    assert (s == "train").any()
    check_identity_disjoint(m, s)


def test_clip_label_column_is_used_and_tables():
    m = _manifest(10)
    m["clip_label"] = m["label"]
    s = identity_split(m, 0.2, 0.2, seed=0)
    t = split_table(m, s)
    assert t.loc["(identities)"].sum() == m["identity"].nunique()
    assert t.drop(index="(identities)").to_numpy().sum() == len(m)
    proto = cross_dataset_protocol(m, {"lavdf": m.iloc[:5]})
    assert set(proto["lavdf"]) == {"test"} and len(proto["train"]) == len(m)

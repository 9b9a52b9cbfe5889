"""Identity-disjoint splits and the unseen-generator protocol."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amdd_kit.data.splits import (check_identity_disjoint, cross_dataset_protocol,
                                  face_leaks, identity_split, split_report, split_table)

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


# -- face donors ---------------------------------------------------------------------------------
def _donor_ring(n_ids: int = 30) -> pd.DataFrame:
    """Each identity: 2 reals, a faceswap whose donor is the next identity (a ring: one
    connected component of everyone, like real FakeAVCeleb's donor graph), an rtvc (no donor)."""
    rows = []
    for i in range(n_ids):
        ident, nxt = f"id{i:05d}", f"id{(i + 1) % n_ids:05d}"
        rows += [{"identity": ident, "method": "real", "label": 0, "donor": ""}] * 2
        rows.append({"identity": ident, "method": "faceswap", "label": 1, "donor": nxt})
        rows.append({"identity": ident, "method": "rtvc", "label": 1, "donor": "-"})
    return pd.DataFrame(rows)


def _home(m: pd.DataFrame, s: pd.Series) -> dict[str, str]:
    """Each identity's split, read off its real clips (never unused)."""
    real = m["method"] == "real"
    return dict(zip(m.loc[real, "identity"], s[real]))


def test_no_donor_face_leaks_across_splits_and_straddlers_are_counted():
    m = _donor_ring()
    s = identity_split(m, 0.2, 0.2, seed=0)
    home = _home(m, s)
    assert set(home.values()) == {"train", "valid", "test"}     # the ring did not swallow all
    swaps = m["method"] == "faceswap"
    straddle = swaps & (m["identity"].map(home) != m["donor"].map(home))
    # every fake whose donor lives elsewhere is left out, every other fake is kept
    assert (s[straddle] == "unused").all()
    assert (s[swaps & ~straddle] == m.loc[swaps & ~straddle, "identity"].map(home)).all()
    assert (s[m["method"] == "rtvc"] != "unused").all()
    # a ring cut into three non-empty arcs crosses at least three edges
    assert straddle.sum() >= 3
    for split in ("train", "valid", "test"):
        kept = m[(s == split) & swaps]
        assert (kept["donor"].map(home) == split).all(), f"a donor face leaks into {split}"
    check_identity_disjoint(m, s)
    rep = split_report(m, s)
    assert rep["dropped_donor"] == int(straddle.sum()) == rep["clips"]["unused"]
    assert rep["dropped_donor_by_method"] == {"faceswap": int(straddle.sum())}
    assert rep["face_leaks"] == 0 and rep["dropped_holdout"] == 0
    assert sum(rep["clips"].values()) == len(m)
    assert sum(rep["identities"].values()) == m["identity"].nunique()


def test_greedy_pass_drops_fewer_fakes_with_the_same_split_sizes():
    m = _donor_ring(40)
    plain = [identity_split(m, 0.2, 0.2, seed=k, reduce_drops=False) for k in range(5)]
    greedy = [identity_split(m, 0.2, 0.2, seed=k) for k in range(5)]
    drops_plain = [split_report(m, s)["dropped_donor"] for s in plain]
    drops_greedy = [split_report(m, s)["dropped_donor"] for s in greedy]
    assert all(g <= p for g, p in zip(drops_greedy, drops_plain))
    assert sum(drops_greedy) < sum(drops_plain)
    for p, g in zip(plain, greedy):
        assert split_report(m, p)["identities"] == split_report(m, g)["identities"]
        check_identity_disjoint(m, g)
    assert greedy[0].equals(identity_split(m, 0.2, 0.2, seed=0))   # deterministic


def test_donor_outside_the_manifest_lives_in_one_split():
    m = _manifest(20)
    fakes = m.index[m["label"] == 1]
    m["donor"] = ""
    m.loc[fakes, "donor"] = "id99999"        # one outside person's face in every fake
    s = identity_split(m, 0.2, 0.2, seed=0)
    used = s[m["donor"] == "id99999"]
    assert used[used != "unused"].nunique() == 1
    assert (used == "unused").sum() > 0
    check_identity_disjoint(m, s)


def test_without_donors_the_split_is_unchanged():
    m = _manifest()
    with_col = m.assign(donor="")
    assert identity_split(m, 0.2, 0.2, seed=5).equals(identity_split(with_col, 0.2, 0.2, seed=5))


def test_check_catches_a_donor_leak_and_holdout_stays_in_test():
    m = _donor_ring(6)
    s = pd.Series("train", index=m.index)
    s[m["identity"] == "id00001"] = "test"
    # id00000's train swap shows id00001's face; id00001's test swap shows id00002's
    assert face_leaks(m, s) == ["id00001", "id00002"]
    with pytest.raises(AssertionError, match="id00001"):
        check_identity_disjoint(m, s)
    ring = _donor_ring()
    held = identity_split(ring, 0.2, 0.2, seed=0, holdout_methods=("faceswap",))
    assert (held[ring["method"] == "faceswap"] == "test").all()
    strict = identity_split(ring, 0.2, 0.2, seed=0, holdout_methods=("faceswap",),
                            strict_holdout=True)
    rep = split_report(ring, strict, holdout_methods=("faceswap",))
    assert rep["dropped_donor"] == 0 and rep["dropped_holdout"] > 0
    check_identity_disjoint(ring, strict)

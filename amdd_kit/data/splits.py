"""Identity-disjoint splits and the evaluation protocols built on them.

FakeAVCeleb has no official split. Splitting clips at random leaks identities: the real video of
a person and the fakes made from it land on both sides, and a model can score well by
recognising faces. We split *identities* instead (the ``identity`` column: the FakeAVCeleb
``source`` id), so every clip of a person lives in exactly one split.

Protocols:

* **Standard**: :func:`identity_split` with ``holdout_methods=()``.
* **Unseen generator**: ``holdout_methods=("fsgan", ...)``: clips of those methods never appear
  in train/valid; they all go to ``test`` (also those of train/valid identities, so test holds
  every clip of the unseen generator. Those clips share the *person* with training clips, never
  the generator; pass ``strict_holdout=True`` to mark them ``"unused"`` instead).
* **Cross dataset**: train on one store, test on whole other stores
  (:func:`cross_dataset_protocol`).
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def identity_split(manifest: pd.DataFrame, valid_frac: float = 0.2, test_frac: float = 0.2,
                   seed: int = 0, holdout_methods: Iterable[str] = (),
                   strict_holdout: bool = False) -> pd.Series:
    """Assign each row (clip or video) to ``"train" | "valid" | "test"`` by identity.

    Args:
        manifest: needs columns ``identity``, ``label`` (or ``clip_label``) and ``method``.
        valid_frac, test_frac: fractions of *identities* for valid and test.
        seed: random seed (same seed + same manifest = same split).
        holdout_methods: methods kept out of train/valid (unseen-generator protocol).
        strict_holdout: mark held-out clips of train/valid identities ``"unused"`` instead of
            sending them to test (no identity then straddles at all).

    Identities are stratified by what they carry (reals only, fakes only, both), and each
    stratum is cut with the given fractions, so every split gets reals and fakes whenever the
    data allow it (each split gets at least one identity when there are at least three).

    Returns:
        ``pd.Series`` of split names aligned with ``manifest.index``.
    """
    if not 0 <= valid_frac < 1 or not 0 <= test_frac < 1 or valid_frac + test_frac >= 1:
        raise ValueError(f"need 0 <= valid_frac, test_frac and valid_frac + test_frac < 1, got "
                         f"{valid_frac}, {test_frac}")
    for c in ("identity", "method"):
        if c not in manifest.columns:
            raise ValueError(f"manifest lacks column {c!r}")
    label_col = "clip_label" if "clip_label" in manifest.columns else "label"
    held = set(holdout_methods)
    unknown = held - set(manifest["method"])
    if unknown:
        raise ValueError(f"holdout methods {sorted(unknown)} not in the manifest "
                         f"(methods: {sorted(manifest['method'].unique())})")
    ident = manifest["identity"].astype(str)
    labels = manifest[label_col].astype(int)
    in_pool = ~manifest["method"].isin(held)
    # what each identity carries (among clips that can be trained on)
    kind = pd.DataFrame({"id": ident[in_pool], "y": labels[in_pool]}).groupby("id")["y"] \
        .agg(lambda y: f"{int((y == 0).any())}{int((y == 1).any())}")  # "10" reals only, ...
    rng = np.random.default_rng(seed)
    assign: dict[str, str] = {}
    for _, ids in sorted(kind.groupby(kind).groups.items()):
        ids = sorted(ids)
        rng.shuffle(ids)
        n = len(ids)
        n_test, n_valid = _cut(n, test_frac), _cut(n, valid_frac)
        if n_test + n_valid >= n and n > 0:  # keep at least one identity for training
            n_valid = max(0, n - 1 - n_test)
            n_test = min(n_test, n - 1 - n_valid)
        for i, name in enumerate(ids):
            assign[name] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    _ensure_each_split(assign, kind, rng, valid_frac, test_frac)
    # identities that only have held-out clips: test
    split = ident.map(assign).fillna("test")
    if held:
        is_held = manifest["method"].isin(held)
        if strict_holdout:
            split[is_held & (split != "test")] = "unused"
        else:
            split[is_held] = "test"
    return split.rename("split")


def _cut(n: int, frac: float) -> int:
    """Identities for a split of fraction ``frac`` out of ``n`` (at least 1 when frac > 0, n>=3)."""
    if frac <= 0 or n == 0:
        return 0
    k = int(round(n * frac))
    return max(k, 1) if n >= 3 else k


def _ensure_each_split(assign: dict[str, str], kind: pd.Series, rng: np.random.Generator,
                       valid_frac: float, test_frac: float) -> None:
    """Move one identity into a split that lacks reals or fakes, when train can spare one."""
    wanted = [s for s, f in (("valid", valid_frac), ("test", test_frac)) if f > 0]
    for split in wanted:
        for cls in (0, 1):  # 0 reals, 1 fakes
            has = [i for i, s in assign.items() if s == split and kind[i][cls] == "1"]
            if has:
                continue
            donors = sorted(i for i, s in assign.items() if s == "train" and kind[i][cls] == "1")
            if len(donors) >= 2:
                assign[donors[int(rng.integers(len(donors)))]] = split


def split_table(manifest: pd.DataFrame, split: pd.Series, by: str = "method") -> pd.DataFrame:
    """Counts per split (columns) and ``by`` value (rows), with identity counts in the last row."""
    t = pd.crosstab(manifest[by], split).reindex(columns=[s for s in SPLITS if s in set(split)]
                                                  + sorted(set(split) - set(SPLITS)))
    ids = manifest.groupby(split)["identity"].nunique().reindex(t.columns)
    t.loc["(identities)"] = ids.to_numpy()
    return t


def check_identity_disjoint(manifest: pd.DataFrame, split: pd.Series,
                            ignore_methods: Iterable[str] = ()) -> None:
    """Raise ``AssertionError`` if an identity appears in more than one split.

    Rows of ``ignore_methods`` (held-out generators sent to test) are not checked.
    """
    keep = ~manifest["method"].isin(set(ignore_methods)) & split.isin(SPLITS)
    per_id = split[keep].groupby(manifest.loc[keep, "identity"]).nunique()
    bad = per_id[per_id > 1]
    if len(bad):
        raise AssertionError(f"identities in several splits: {list(bad.index[:5])}")


def cross_dataset_protocol(train_manifest: pd.DataFrame,
                           others: Mapping[str, pd.DataFrame], valid_frac: float = 0.2,
                           test_frac: float = 0.2, seed: int = 0) -> dict[str, pd.Series]:
    """Splits for training on one dataset and testing on others.

    The training dataset gets an ordinary :func:`identity_split`; every other dataset is used
    whole as a test set (it shares neither identities nor, by design, generators with training).

    Returns:
        ``{"train": split Series of the training manifest, <name>: Series of "test", ...}``.
    """
    out = {"train": identity_split(train_manifest, valid_frac, test_frac, seed)}
    for name, man in others.items():
        out[name] = pd.Series("test", index=man.index, name="split")
    return out

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

Face donors
-----------
A face swap shows two people: the ``identity`` whose video was edited and the ``donor`` whose
face was pasted in (manifest column ``donor``, FakeAVCeleb's ``target1``; empty when none).
Splitting by ``identity`` alone would let a test person's face appear inside a *training* fake.
So every person (identity or donor) gets one home split, and a fake is kept only when its
identity and its donor live in the same split; otherwise it is marked ``"unused"`` and counted
by :func:`split_report` (``dropped_donor``).

Why not simply keep connected people together? Donors chain people: on the real FakeAVCeleb
(500 identities, thousands of swaps within race and gender) the "shares a face" graph joins
almost everyone into a few huge components, so grouping them would leave no test set. Instead
we split identities as usual and then run a cheap greedy pass (:func:`_reduce_donor_drops`)
that swaps two identities of the same kind between splits whenever that keeps more fakes;
it never changes how many identities of each kind a split holds, and it is deterministic from
the seed.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def identity_split(manifest: pd.DataFrame, valid_frac: float = 0.2, test_frac: float = 0.2,
                   seed: int = 0, holdout_methods: Iterable[str] = (),
                   strict_holdout: bool = False, reduce_drops: bool = True) -> pd.Series:
    """Assign each row (clip or video) to ``"train" | "valid" | "test" | "unused"`` by identity.

    Args:
        manifest: needs columns ``identity``, ``label`` (or ``clip_label``) and ``method``;
            an optional ``donor`` column (face donor of a swap, "" when none) makes the split
            donor-aware (see the module docstring).
        valid_frac, test_frac: fractions of *identities* for valid and test.
        seed: random seed (same seed + same manifest = same split).
        holdout_methods: methods kept out of train/valid (unseen-generator protocol).
        strict_holdout: mark held-out clips of train/valid identities ``"unused"`` instead of
            sending them to test (no identity then straddles at all).
        reduce_drops: run the greedy pass that swaps identities between splits to keep more
            donor fakes (no effect without donors).

    Identities are stratified by what they carry (reals only, fakes only, both), and each
    stratum is cut with the given fractions, so every split gets reals and fakes whenever the
    data allow it (each split gets at least one identity when there are at least three).
    A fake whose donor's home split differs from its identity's split is ``"unused"``: no
    face of a valid or test person appears in training, not even inside a fake.

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
    donor = _donors(manifest)
    edges = _donor_edges(ident[in_pool], donor[in_pool], set(assign))
    if reduce_drops and edges:
        _reduce_donor_drops(assign, kind, edges, rng)
    # identities that only have held-out clips: test
    split = ident.map(assign).fillna("test")
    is_held = manifest["method"].isin(held)
    if held:
        if strict_holdout:
            split[is_held & (split != "test")] = "unused"
        else:
            split[is_held] = "test"
    # donor faces: a fake is kept only where its donor lives in the same split
    # (held-out clips sent to test share their people with training by design: not checked)
    home = _face_homes(assign, ident, donor, split)
    exempt = is_held if not strict_holdout else pd.Series(False, index=manifest.index)
    checked = (donor != "") & (donor != ident) & split.isin(SPLITS) & ~exempt
    straddles = checked & (donor.map(home).fillna("") != split)
    split[straddles] = "unused"
    return split.rename("split")


def _donors(manifest: pd.DataFrame) -> pd.Series:
    """The ``donor`` column as clean strings ("" where none; all "" when the column is absent)."""
    if "donor" not in manifest.columns:
        return pd.Series("", index=manifest.index)
    d = manifest["donor"].fillna("").astype(str).str.strip()
    return d.where(~d.isin(["-", "nan", "None"]), "")


def _donor_edges(ident: pd.Series, donor: pd.Series, people: set[str]
                 ) -> dict[str, dict[str, int]]:
    """Symmetric ``{a: {b: number of fakes joining a and b}}`` between split identities."""
    edges: dict[str, dict[str, int]] = {}
    for a, b in zip(ident, donor):
        if not b or a == b or b not in people:
            continue
        edges.setdefault(a, {}).setdefault(b, 0)
        edges.setdefault(b, {}).setdefault(a, 0)
        edges[a][b] += 1
        edges[b][a] += 1
    return edges


def _reduce_donor_drops(assign: dict[str, str], kind: pd.Series,
                        edges: dict[str, dict[str, int]], rng: np.random.Generator,
                        passes: int = 3) -> int:
    """Greedy swaps of two same-kind identities between splits that keep more donor fakes.

    The cost is the number of fakes whose identity and donor sit in different splits. For an
    identity ``i`` in split ``A`` and a candidate ``j`` in split ``B`` (same kind, so split
    sizes and strata stay as they were) the change of the cost when they swap is
    ``w_i[A] - w_i[B] + w_j[B] - w_j[A] + 2 e_ij``, where ``w_x[S]`` counts the fakes joining
    ``x`` to people in ``S`` and ``e_ij`` those joining ``i`` and ``j``. A swap is made when
    it lowers the cost. Returns the number of swaps made.
    """
    weight: dict[str, dict[str, int]] = {}
    for i, nbrs in edges.items():
        w = dict.fromkeys(SPLITS, 0)
        for n, e in nbrs.items():
            w[assign[n]] += e
        weight[i] = w
    by_split_kind: dict[tuple[str, str], list[str]] = {}
    for name in sorted(assign):
        by_split_kind.setdefault((assign[name], kind[name]), []).append(name)
    order = sorted(edges)
    rng.shuffle(order)
    swaps = 0
    for _ in range(passes):
        changed = False
        for i in order:
            a, wi = assign[i], weight[i]
            best, best_delta = None, 0
            for b in SPLITS:
                if b == a or wi[b] <= wi[a]:
                    continue                     # i would not gain from moving to b
                for j in by_split_kind.get((b, kind[i]), ()):
                    wj = weight.get(j)
                    delta = wi[a] - wi[b] + 2 * edges[i].get(j, 0) + \
                        ((wj[b] - wj[a]) if wj else 0)
                    if delta < best_delta:
                        best, best_delta = j, delta
            if best is None:
                continue
            b = assign[best]
            for x, src, dst in ((i, a, b), (best, b, a)):
                assign[x] = dst
                by_split_kind[(src, kind[x])].remove(x)
                by_split_kind.setdefault((dst, kind[x]), []).append(x)
                for n, e in edges.get(x, {}).items():
                    weight[n][src] -= e
                    weight[n][dst] += e
            swaps += 1
            changed = True
        if not changed:
            break
    return swaps


def _face_homes(assign: dict[str, str], ident: pd.Series, donor: pd.Series,
                split: pd.Series) -> dict[str, str]:
    """Home split of every person: an identity's own split; a donor who is not an identity of
    the manifest lives where most of the fakes showing their face are (ties: train first)."""
    home = dict(assign)
    home.update({p: "test" for p in set(ident) - set(assign)})  # only held-out clips: test
    rows = pd.DataFrame({"d": donor, "s": split})
    rows = rows[(rows["d"] != "") & ~rows["d"].isin(set(home)) & rows["s"].isin(SPLITS)]
    rank = {s: k for k, s in enumerate(SPLITS)}
    for d, g in rows.groupby("d", sort=True):
        counts = g["s"].value_counts()
        home[d] = min(counts.index, key=lambda s: (-counts[s], rank[s]))
    return home


def split_report(manifest: pd.DataFrame, split: pd.Series | np.ndarray,
                 holdout_methods: Iterable[str] = ()) -> dict:
    """What a split kept and what it left out, as a small JSON-able dict.

    Keys: ``clips`` (per split name, ``"unused"`` included), ``identities`` (distinct
    identities per split among kept rows), ``dropped_donor`` (fakes left out because their
    face donor lives in another split), ``dropped_donor_by_method``, ``dropped_holdout``
    (held-out clips left out by ``strict_holdout``) and ``face_leaks`` (people whose face is
    in more than one of train/valid/test; 0 for a split made by :func:`identity_split`).
    """
    split = pd.Series(np.asarray(split), index=manifest.index, name="split")
    held = manifest["method"].isin(set(holdout_methods))
    unused = split == "unused"
    donor = _donors(manifest)
    by_donor = unused & ~held & (donor != "") & (donor != manifest["identity"].astype(str))
    kept = split.isin(SPLITS)
    ids = manifest.loc[kept, "identity"].astype(str).groupby(split[kept]).nunique()
    return {
        "clips": {str(k): int(v) for k, v in split.value_counts().sort_index().items()},
        "identities": {s: int(ids.get(s, 0)) for s in SPLITS},
        "dropped_donor": int(by_donor.sum()),
        "dropped_donor_by_method": {str(k): int(v) for k, v in
                                    manifest.loc[by_donor, "method"].value_counts()
                                    .sort_index().items()},
        "dropped_holdout": int((unused & held).sum()),
        "face_leaks": len(face_leaks(manifest, split, ignore_methods=holdout_methods)),
    }


def face_leaks(manifest: pd.DataFrame, split: pd.Series | np.ndarray,
               ignore_methods: Iterable[str] = ()) -> list[str]:
    """People whose face (as identity or as donor) appears in more than one of
    train/valid/test. Rows of ``ignore_methods`` (held-out generators) are not checked."""
    split = pd.Series(np.asarray(split), index=manifest.index)
    keep = ~manifest["method"].isin(set(ignore_methods)) & split.isin(SPLITS)
    donor = _donors(manifest)
    faces = pd.concat([
        pd.DataFrame({"face": manifest.loc[keep, "identity"].astype(str), "s": split[keep]}),
        pd.DataFrame({"face": donor[keep & (donor != "")], "s": split[keep & (donor != "")]}),
    ])
    per_face = faces.groupby("face")["s"].nunique()
    return sorted(per_face[per_face > 1].index)


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
    """Raise ``AssertionError`` if an identity appears in more than one split, or a face donor
    (manifest column ``donor``) in a split other than the one its face belongs to.

    Rows of ``ignore_methods`` (held-out generators sent to test) are not checked.
    """
    keep = ~manifest["method"].isin(set(ignore_methods)) & split.isin(SPLITS)
    per_id = split[keep].groupby(manifest.loc[keep, "identity"]).nunique()
    bad = per_id[per_id > 1]
    if len(bad):
        raise AssertionError(f"identities in several splits: {list(bad.index[:5])}")
    leaks = face_leaks(manifest, split, ignore_methods)
    if leaks:
        raise AssertionError(f"faces (identity or donor) in several splits: {leaks[:5]}")


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

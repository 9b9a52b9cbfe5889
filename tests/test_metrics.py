"""Detection and attribution metrics on small hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from amdd_kit.config import METHODS
from amdd_kit.metrics import (attribution_accuracy, attribution_class_recall,
                              attribution_fake_accuracy, attribution_macro_accuracy,
                              attribution_majority_baseline, attribution_recall, binary_metrics,
                              detection_recall, summarise)

REAL, RTVC, FACESWAP, FSGAN = (METHODS.index(m) for m in ("real", "rtvc", "faceswap", "fsgan"))


def _table() -> pd.DataFrame:
    """10 clips: 5 real, 3 faceswap, 2 fsgan, and one clip of an unknown generator (-1).

    Attribution: reals 4/5 right (one called faceswap); faceswap 2/3 (one called fsgan);
    fsgan 0/2 (both called faceswap). Detection: one real called fake, one fsgan called real.
    """
    rows = (
        [("real", REAL, REAL, 0, 0.1)] * 4 + [("real", REAL, FACESWAP, 0, 0.7)]
        + [("faceswap", FACESWAP, FACESWAP, 1, 0.9)] * 2 + [("faceswap", FACESWAP, FSGAN, 1, 0.8)]
        + [("fsgan", FSGAN, FACESWAP, 1, 0.6), ("fsgan", FSGAN, FACESWAP, 1, 0.2)]
        + [("newgan", -1, REAL, 1, 0.9)]
    )
    df = pd.DataFrame(rows, columns=["method", "method_idx", "pred_method_idx", "label", "p_fake"])
    df["pred_label"] = (df["p_fake"] >= 0.5).astype(int)
    return df


def test_attribution_accuracy_ignores_unknown_generators():
    df = _table()
    assert attribution_accuracy(df["method_idx"], df["pred_method_idx"]) == pytest.approx(6 / 10)
    assert math.isnan(attribution_accuracy([-1, -1], [0, 1]))
    # tensors work too
    assert attribution_accuracy(torch.tensor([0, 1]), torch.tensor([0, 0])) == 0.5


def test_majority_baseline_on_an_imbalanced_set():
    df = _table()
    # 5 of the 10 known clips are real: always answering "real" scores 0.5, not 1/7
    assert attribution_majority_baseline(df["method_idx"]) == pytest.approx(0.5)
    assert attribution_majority_baseline([3, 3, 3, 1, -1]) == pytest.approx(0.75)
    assert math.isnan(attribution_majority_baseline([-1]))
    # a constant predictor of the majority class scores exactly the baseline
    true = np.array([2, 2, 2, 2, 5, 6, 0])
    assert attribution_accuracy(true, np.full_like(true, 2)) == \
        attribution_majority_baseline(true)


def test_macro_and_per_class_recall():
    df = _table()
    rec = attribution_class_recall(df["method_idx"], df["pred_method_idx"])
    assert rec == {REAL: pytest.approx(0.8), FACESWAP: pytest.approx(2 / 3), FSGAN: 0.0}
    assert attribution_recall(df) == {"real": pytest.approx(0.8),
                                      "faceswap": pytest.approx(2 / 3), "fsgan": 0.0}
    macro = attribution_macro_accuracy(df["method_idx"], df["pred_method_idx"])
    assert macro == pytest.approx((0.8 + 2 / 3 + 0.0) / 3)
    # macro differs from accuracy: the big "real" class no longer dominates
    assert macro < attribution_accuracy(df["method_idx"], df["pred_method_idx"])


def test_fake_only_attribution():
    df = _table()
    # fakes of known generators: 3 faceswap (2 right) + 2 fsgan (0 right) = 2/5
    got = attribution_fake_accuracy(df["method_idx"], df["pred_method_idx"], df["label"])
    assert got == pytest.approx(2 / 5)


def test_detection_recall_is_per_method_detection():
    df = _table()
    rec = detection_recall(df)
    assert rec == {"real": pytest.approx(4 / 5), "faceswap": 1.0, "fsgan": 0.5, "newgan": 1.0}
    b = binary_metrics(df["label"], df["p_fake"])
    assert b["real_recall"] == pytest.approx(4 / 5) and b["fake_recall"] == pytest.approx(5 / 6)
    assert b["balanced_accuracy"] == pytest.approx((4 / 5 + 5 / 6) / 2)


def test_summarise_keys_and_holdout():
    df = _table()
    m = summarise(df)
    assert m["attribution_accuracy"] == pytest.approx(0.6)
    assert m["attribution_majority_baseline"] == pytest.approx(0.5)
    assert m["attribution_macro_accuracy"] == pytest.approx((0.8 + 2 / 3) / 3)
    assert m["attribution_fake_accuracy"] == pytest.approx(0.4)
    # fakes: 3 faceswap, 2 fsgan -> always "faceswap" scores 3/5
    assert m["attribution_fake_majority_baseline"] == pytest.approx(0.6)
    assert set(m["attribution_recall"]) == {"real", "faceswap", "fsgan"}
    assert set(m["detection_recall"]) == {"real", "faceswap", "fsgan", "newgan"}
    assert "per_method_recall" not in m and m["n_test"] == 11
    held = summarise(df, holdout_methods=("fsgan",))
    assert held["attribution_accuracy"] == pytest.approx(6 / 8)
    assert held["attribution_fake_accuracy"] == pytest.approx(2 / 3)
    assert "fsgan" not in held["attribution_recall"] and "fsgan" in held["detection_recall"]


def test_fastai_metrics_read_their_head_of_the_output_dict():
    """HeadMetric (fastai's AccumMetric) picks ``det_logit`` / ``attr_logits`` from the dict the
    model returns and the matching target, over several batches; names as in history.csv."""
    from types import SimpleNamespace

    from fastai.torch_core import to_detach

    from amdd_kit.metrics import balanced_accuracy, fastai_metrics, safe_auc
    df = _table()
    p = torch.tensor(df["p_fake"].to_numpy(), dtype=torch.float32)
    logit = torch.log(p) - torch.log1p(-p)
    attr = torch.nn.functional.one_hot(torch.tensor(df["pred_method_idx"].to_numpy()), 7) * 5.0
    label = torch.tensor(df["label"].to_numpy())
    method = torch.tensor(df["method_idx"].to_numpy())
    mets = fastai_metrics()
    assert [m.name for m in mets] == ["bal_acc", "auc", "attr_acc"]
    for m in mets:
        m.reset()
        for sl in (slice(0, 4), slice(4, None)):  # two batches
            out = {"det_logit": logit[sl], "attr_logits": attr[sl], "embedding": attr[sl]}
            m.accumulate(SimpleNamespace(pred=out, yb=(label[sl], method[sl]),
                                         to_detach=to_detach))
    bal, auc, acc = (m.value for m in mets)
    assert bal == pytest.approx(binary_metrics(df["label"], df["p_fake"])["balanced_accuracy"])
    assert bal == pytest.approx(balanced_accuracy(df["label"], df["p_fake"]))
    assert auc == pytest.approx(safe_auc(df["label"], df["p_fake"]))
    assert acc == pytest.approx(6 / 10)  # the unknown generator (-1) is ignored
    assert math.isnan(balanced_accuracy([1, 1], [0.9, 0.2]))


# -- each score is defined once; these pin it to the formulas it replaced --------------------
def test_shared_scores_equal_the_hand_written_ones_they_replaced():
    """``balanced_accuracy``, ``majority_share`` / ``attribution_majority_baseline`` and
    ``geometry.silhouette`` replaced copies in ``ablation``, ``traces`` and ``geometry``; the
    old formulas, written out here, must give the same numbers on random batches."""
    from sklearn.metrics import silhouette_score

    from amdd_kit.geometry import silhouette
    from amdd_kit.metrics import balanced_accuracy, majority_share
    from amdd_kit.experiments.shortcut import LeadingSilenceDetector

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(4, 60))
        label = rng.integers(0, 2, n)
        label[:2] = [0, 1]
        p_fake = rng.random(n)
        pred = p_fake >= 0.5                                # ablation._balanced_accuracy
        old = np.mean([float((pred[label == c] == bool(c)).mean()) for c in (0, 1)])
        assert balanced_accuracy(label, p_fake) == old
        method_idx = rng.integers(-1, 7, n)                 # ablation / metrics majority
        known = pd.Series(method_idx[method_idx >= 0])
        old = float(known.value_counts(normalize=True).max()) if len(known) else float("nan")
        assert attribution_majority_baseline(method_idx) == pytest.approx(old, nan_ok=True)
        names = rng.choice(["none", "blend", "upsample"], n)   # geometry.trace_report baseline
        assert majority_share(names) == float(pd.Series(names).value_counts(normalize=True).max())
        emb = rng.normal(size=(n, 8)).astype(np.float32)  # ablation._silhouette
        methods = rng.choice(["a", "b", "c"], n)
        assert silhouette(emb, methods, "cosine") == float(
            silhouette_score(emb, methods, metric="cosine"))
    # the shortcut audit's detector: mean of the two recalls of its 0/1 predictions
    det = LeadingSilenceDetector().fit([0.0, 0.1, 0.3, 0.4], [0, 0, 1, 1])
    silence, y = rng.random(40) * 0.5, rng.integers(0, 2, 40)
    p = det.predict(silence)
    assert det.balanced_score(silence, y) == np.mean([(p[y == c] == c).mean() for c in (0, 1)])
    # undefined cases are NaN everywhere
    assert math.isnan(balanced_accuracy([1, 1], [0.2, 0.9]))
    assert math.isnan(majority_share([])) and math.isnan(silhouette(emb[:3], ["a"] * 3))


def test_recalls_and_shares_equal_the_hand_written_ones_they_replaced():
    """Per-class recall is ``recall_score(average=None)`` and the share per class
    ``value_counts(normalize=True)``; the old loops, written out here, give the same numbers."""
    from amdd_kit.evaluate import attribution_landing

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 50))
        true, pred = rng.integers(-1, 7, n), rng.integers(0, 7, n)
        known = true >= 0
        t, p = true[known], pred[known]
        old = {int(c): float((p[t == c] == c).mean()) for c in np.unique(t)}
        assert attribution_class_recall(true, pred) == old
        label, p_fake = rng.integers(0, 2, n), rng.random(n)
        hard = (p_fake >= 0.5).astype(int)
        b = binary_metrics(label, p_fake)
        for c, key in ((0, "real_recall"), (1, "fake_recall")):
            old = float((hard[label == c] == c).mean()) if (label == c).any() else float("nan")
            assert b[key] == pytest.approx(old, nan_ok=True) and (b[key] == old or np.isnan(old))
        names = pd.DataFrame({"pred_method": rng.choice(list(METHODS[:4]), n)})
        counts = names["pred_method"].value_counts()
        old = {c: float(counts.get(c, 0)) / n for c in METHODS}
        assert attribution_landing(names) == old
    assert attribution_landing(names.iloc[:0]) == {c: 0.0 for c in METHODS}

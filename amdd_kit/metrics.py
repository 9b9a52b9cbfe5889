"""Detection and attribution metrics, as plain functions and as fastai metrics.

Conventions: ``label`` is 1 for fake, 0 for real; ``p_fake`` is the model's probability of fake
(sigmoid of ``det_logit``); ``method_idx`` indexes :data:`amdd_kit.config.METHODS` and is -1 for
clips whose generator is not one of the 7 training classes (held-out generators), which the
attribution metrics ignore.

Attribution is reported with its baselines, so a number can be read honestly:

* ``attribution_accuracy`` -- fraction of clips of a known generator named correctly (7 classes,
  ``real`` included);
* ``attribution_majority_baseline`` -- what always answering the most frequent class scores on
  the same clips (on an imbalanced test set this is well above 1/7);
* ``attribution_macro_accuracy`` -- the mean of the per-class recalls (every class counts the
  same, however many clips it has);
* ``attribution_fake_accuracy`` / ``attribution_fake_majority_baseline`` -- the same over fake
  clips only: which generator made this fake?
* ``attribution_recall`` -- per class, the fraction of its clips attributed to it.

``detection_recall`` is *detection*: per generator, the fraction of its clips the real/fake
decision got right (reals called real, fakes called fake).

``open_set_metrics`` scores a rejection score over known and unknown clips (AUROC, FPR at 95 %
TPR, OSCR from ``pytorch-ood``; the protocols that call it: :mod:`amdd_kit.openset_eval`).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from fastai.metrics import AccumMetric, ActivationType
from sklearn.metrics import (balanced_accuracy_score, confusion_matrix, recall_score,
                             roc_auc_score)

from .config import METHODS


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def safe_auc(label, score) -> float:
    """ROC AUC, or NaN when only one class is present (AUC is undefined there)."""
    label, score = _np(label).astype(int), _np(score).astype(float)
    if len(np.unique(label)) < 2:
        return float("nan")
    return float(roc_auc_score(label, score))


def balanced_accuracy(label, p_fake, threshold: float = 0.5) -> float:
    """scikit-learn's balanced accuracy of ``p_fake >= threshold``; NaN unless both classes
    are present (with one class, e.g. a held-out set of fakes, it is undefined)."""
    label = _np(label).astype(int)
    if len(np.unique(label)) < 2:
        return float("nan")
    return float(balanced_accuracy_score(label, (_np(p_fake) >= threshold).astype(int)))


def binary_metrics(label, p_fake, threshold: float = 0.5) -> dict[str, float]:
    """Balanced accuracy, AUC and the recall of each class.

    ``real_recall`` is the fraction of real clips called real; ``fake_recall`` the fraction of
    fakes called fake. Their mean is the balanced accuracy.
    """
    label = _np(label).astype(int)
    p_fake = _np(p_fake).astype(float)
    real_recall, fake_recall = class_recall(label, (p_fake >= threshold).astype(int), [0, 1])
    return {
        "real_recall": real_recall,
        "fake_recall": fake_recall,
        "auc": safe_auc(label, p_fake),
        "n": int(len(label)),
        "balanced_accuracy": balanced_accuracy(label, p_fake, threshold),
    }


def _known(method_idx, pred_idx) -> tuple[np.ndarray, np.ndarray]:
    """The (true, predicted) class indices of clips of a known generator (``method_idx >= 0``)."""
    method_idx, pred_idx = _np(method_idx).astype(int), _np(pred_idx).astype(int)
    known = method_idx >= 0
    return method_idx[known], pred_idx[known]


def attribution_accuracy(method_idx, pred_idx) -> float:
    """Fraction of clips of a known generator (``method_idx >= 0``) attributed correctly."""
    true, pred = _known(method_idx, pred_idx)
    return float((pred == true).mean()) if len(true) else float("nan")


def majority_share(labels) -> float:
    """Share of the most frequent value of ``labels`` ``[N]`` (NaN when empty): the accuracy of
    always giving the most frequent answer, the no-skill baseline of any classification score."""
    labels = pd.Series(_np(labels))
    return float(labels.value_counts(normalize=True).max()) if len(labels) else float("nan")


def attribution_majority_baseline(method_idx) -> float:
    """Accuracy of always answering the most frequent known class of ``method_idx``.

    The share of the largest class (:func:`majority_share` of the known clips): no constant
    answer scores more on these clips. Compare ``attribution_accuracy`` with this, not with
    ``1 / n_classes``.
    """
    true = _np(method_idx).astype(int)
    return majority_share(true[true >= 0])


def class_recall(true, pred, classes) -> list[float]:
    """Per class of ``classes``: the fraction of its clips in ``true`` ``[N]`` that ``pred``
    ``[N]`` names right (scikit-learn's ``recall_score(average=None)``); NaN for a class absent
    from ``true``."""
    true, pred = _np(true), _np(pred)
    if len(true) == 0:
        return [float("nan")] * len(classes)
    return [float(r) for r in recall_score(true, pred, labels=list(classes), average=None,
                                           zero_division=np.nan)]


def attribution_class_recall(method_idx, pred_idx) -> dict[int, float]:
    """Per known class index present in ``method_idx``: the fraction of its clips named right."""
    true, pred = _known(method_idx, pred_idx)
    classes = np.unique(true).tolist()
    return dict(zip(classes, class_recall(true, pred, classes)))


def attribution_macro_accuracy(method_idx, pred_idx) -> float:
    """Mean per-class recall over the known classes present (balanced attribution accuracy)."""
    rec = attribution_class_recall(method_idx, pred_idx)
    return float(np.mean(list(rec.values()))) if rec else float("nan")


def attribution_fake_accuracy(method_idx, pred_idx, label) -> float:
    """Attribution accuracy over fake clips only (``label == 1``): which generator made it?"""
    fake = _np(label).astype(int) == 1
    return attribution_accuracy(_np(method_idx)[fake], _np(pred_idx)[fake])


def attribution_recall(df: pd.DataFrame, classes: tuple[str, ...] = METHODS) -> dict[str, float]:
    """Per attribution class present in ``df``: the fraction of its clips attributed to it.

    ``df`` needs ``method_idx`` and ``pred_method_idx``; keys are class names of ``classes``.
    """
    rec = attribution_class_recall(df["method_idx"], df["pred_method_idx"])
    return {classes[c]: v for c, v in rec.items()}


def detection_recall(df: pd.DataFrame) -> dict[str, float]:
    """Per generator, the fraction of its clips the *detector* got right (real vs fake).

    For ``real`` that is the fraction called real; for every fake method the fraction called
    fake. ``df`` needs the columns ``method``, ``label``, ``pred_label``. (Attribution per
    class is :func:`attribution_recall`.)
    """
    out = {}
    for method, g in df.groupby("method", sort=True):
        out[str(method)] = float((g["pred_label"] == g["label"]).mean())
    return out


def confusion(df: pd.DataFrame, classes: tuple[str, ...] = METHODS) -> pd.DataFrame:
    """Attribution confusion matrix (rows: true generator, columns: predicted)."""
    known = df[df["method_idx"] >= 0]
    cm = confusion_matrix(known["method_idx"], known["pred_method_idx"],
                          labels=list(range(len(classes))))
    return pd.DataFrame(cm, index=list(classes), columns=list(classes))


def summarise(df: pd.DataFrame, holdout_methods: tuple[str, ...] = ()) -> dict:
    """The core of ``metrics.json`` for one evaluation table (e.g. embeddings.parquet).

    Attribution metrics count only generators seen in training: methods in
    ``holdout_methods`` (unseen-generator protocol) cannot be named correctly. Keys: see the
    module docstring; ``detection_recall`` covers every method, held-out ones included.
    """
    b = binary_metrics(df["label"], df["p_fake"])
    seen = df[~df["method"].isin(list(holdout_methods))]
    true, pred, label = seen["method_idx"], seen["pred_method_idx"], seen["label"]
    fake = label.astype(int) == 1
    return {
        "balanced_accuracy": b["balanced_accuracy"],
        "auc": b["auc"],
        "real_recall": b["real_recall"],
        "fake_recall": b["fake_recall"],
        "attribution_accuracy": attribution_accuracy(true, pred),
        "attribution_majority_baseline": attribution_majority_baseline(true),
        "attribution_macro_accuracy": attribution_macro_accuracy(true, pred),
        "attribution_fake_accuracy": attribution_fake_accuracy(true, pred, label),
        "attribution_fake_majority_baseline": attribution_majority_baseline(true[fake]),
        "attribution_recall": attribution_recall(seen),
        "detection_recall": detection_recall(df),
        "n_test": int(len(df)),
    }


# -- open set: known clips against clips of unseen generators --------------------------------
def unknown_mask(n_known: int, n_unknown: int) -> np.ndarray:
    """``[n_known + n_unknown]`` bool, the known clips first."""
    return np.r_[np.zeros(n_known, bool), np.ones(n_unknown, bool)]


def open_set_metrics(score, unknown, pred=None, label=None, threshold: float | None = None,
                     tpr: float = 0.95) -> dict[str, float]:
    """Open-set metrics of one score over known and unknown clips.

    ``score [N]`` (higher = more likely unknown), ``unknown [N]`` bool; ``pred``, ``label`` ``[N]``
    class indices (those of unknown clips are ignored) for ``oscr`` and ``open_set_accuracy``;
    ``threshold`` (a clip is rejected when ``score > threshold``) for ``known_kept``,
    ``unknown_rejected`` and ``open_set_accuracy``. Returns ``auroc``, ``fpr_at_95tpr`` (the key
    names ``tpr``; NaN without both kinds of clips) and those, where given.
    """
    from pytorch_ood.metrics.functional import auroc, fpr_at_tpr, oscr_score

    s = np.asarray(score, dtype=np.float64)
    unknown = np.asarray(unknown, dtype=bool)
    nan = float("nan")
    both = bool(unknown.any() and (~unknown).any())
    out: dict[str, float] = {"n_known": int((~unknown).sum()), "n_unknown": int(unknown.sum())}
    st = torch.tensor(s)
    # pytorch-ood: labels < 0 mark the positive (OOD) class, larger scores mean "positive"
    out["auroc"] = float(auroc(st, torch.tensor(np.where(unknown, -1, 0)))) if both else nan
    # FPR at 95 % TPR with the *known* clips as positives: negate the score, swap the labels
    key = f"fpr_at_{tpr * 100:g}tpr"
    out[key] = float(fpr_at_tpr(-st, torch.tensor(np.where(unknown, 0, -1)), tpr)) \
        if both else nan
    if pred is not None and label is not None:
        lab = np.where(unknown, -1, np.asarray(label, dtype=np.int64))
        pr = np.asarray(pred, dtype=np.int64)
        out["closed_set_accuracy"] = attribution_accuracy(lab, pr)   # unknown clips: lab -1
        out["oscr"] = float(oscr_score(st, torch.tensor(pr), torch.tensor(lab))) \
            if both else nan
    if threshold is not None:
        rejected = s > threshold
        out["known_kept"] = float((~rejected[~unknown]).mean()) if (~unknown).any() else nan
        out["unknown_rejected"] = float(rejected[unknown].mean()) if unknown.any() else nan
        if pred is not None and label is not None:
            right = (~unknown) & (~rejected) & (np.asarray(pred) == np.asarray(label))
            out["open_set_accuracy"] = float((right | (unknown & rejected)).mean()) \
                if len(s) else nan
    return out


# -- fastai metrics ---------------------------------------------------------------------------
class HeadMetric(AccumMetric):
    """fastai's ``AccumMetric`` on one head of the model's output dict.

    fastai's built-in sklearn metrics read ``learn.pred`` as one tensor; the model returns a
    dict, so this picks ``learn.pred[head]`` and the target ``learn.yb[target]`` (0: label,
    1: method_idx) and leaves the rest to ``AccumMetric``: the activation / argmax, and
    ``learn.to_detach``, which gathers predictions and targets from every process when
    training is distributed, so the score is computed over the whole validation set.
    ``func(targets, preds)`` gets numpy arrays.
    """

    def __init__(self, func, head: str, target: int = 0, name: str | None = None, **kwargs):
        super().__init__(func, name=name, to_np=True, invert_arg=True, **kwargs)
        self.head, self.target = head, target

    def accumulate(self, learn):
        super().accumulate(SimpleNamespace(pred=learn.pred[self.head].float(),
                                           y=learn.yb[self.target], to_detach=learn.to_detach))


def fastai_metrics() -> list[HeadMetric]:
    """The metrics of fastai's progress table and ``history.csv``: ``bal_acc`` and ``auc`` of
    the detection head, ``attr_acc`` of the attribution head (known generators only)."""
    return [HeadMetric(balanced_accuracy, "det_logit", 0, "bal_acc",
                       activation=ActivationType.Sigmoid),
            HeadMetric(safe_auc, "det_logit", 0, "auc", activation=ActivationType.Sigmoid),
            HeadMetric(attribution_accuracy, "attr_logits", 1, "attr_acc", dim_argmax=-1)]

"""Detection and attribution metrics, as plain functions and as fastai metrics.

Conventions: ``label`` is 1 for fake, 0 for real; ``p_fake`` is the model's probability of fake
(sigmoid of ``det_logit``); ``method_idx`` indexes :data:`amdd_kit.config.METHODS` and is -1 for
clips whose generator is not one of the 7 training classes (held-out generators), which the
attribution metrics ignore.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from fastai.learner import Metric
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

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


def binary_metrics(label, p_fake, threshold: float = 0.5) -> dict[str, float]:
    """Balanced accuracy, AUC and the recall of each class.

    ``real_recall`` is the fraction of real clips called real; ``fake_recall`` the fraction of
    fakes called fake. Their mean is the balanced accuracy.
    """
    label = _np(label).astype(int)
    p_fake = _np(p_fake).astype(float)
    pred = (p_fake >= threshold).astype(int)
    real, fake = label == 0, label == 1
    out = {
        "real_recall": float((pred[real] == 0).mean()) if real.any() else float("nan"),
        "fake_recall": float((pred[fake] == 1).mean()) if fake.any() else float("nan"),
        "auc": safe_auc(label, p_fake),
        "n": int(len(label)),
    }
    # with one class only (e.g. a held-out set of fakes) balanced accuracy is undefined
    out["balanced_accuracy"] = (float(balanced_accuracy_score(label, pred))
                                if real.any() and fake.any() else float("nan"))
    return out


def attribution_accuracy(method_idx, pred_idx) -> float:
    """Fraction of clips of a known generator (``method_idx >= 0``) attributed correctly."""
    method_idx, pred_idx = _np(method_idx).astype(int), _np(pred_idx).astype(int)
    known = method_idx >= 0
    return float((pred_idx[known] == method_idx[known]).mean()) if known.any() else float("nan")


def per_method_recall(df: pd.DataFrame) -> dict[str, float]:
    """Per generator, the fraction of its clips the detector got right.

    For ``real`` that is the fraction called real; for every fake method the fraction called
    fake. ``df`` needs the columns ``method``, ``label``, ``pred_label``.
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

    Attribution accuracy counts only generators seen in training: methods in
    ``holdout_methods`` (unseen-generator protocol) cannot be named correctly.
    """
    b = binary_metrics(df["label"], df["p_fake"])
    seen = ~df["method"].isin(list(holdout_methods))
    return {
        "balanced_accuracy": b["balanced_accuracy"],
        "auc": b["auc"],
        "real_recall": b["real_recall"],
        "fake_recall": b["fake_recall"],
        "attribution_accuracy": attribution_accuracy(df.loc[seen, "method_idx"],
                                                     df.loc[seen, "pred_method_idx"]),
        "per_method_recall": per_method_recall(df),
        "n_test": int(len(df)),
    }


# -- fastai metrics ---------------------------------------------------------------------------
class _OutputMetric(Metric):
    """Accumulates one head of the model's output dict and the targets over an epoch.

    fastai's built-in sklearn metrics read ``learn.pred`` directly and break on a dict output,
    so these small metrics pick the head they need.
    """

    def __init__(self, name: str):
        self._name = name
        self.reset()

    def reset(self):
        self.preds, self.targs = [], []

    @property
    def name(self) -> str:
        return self._name

    def accumulate(self, learn):
        out, yb = learn.pred, learn.yb
        self.preds.append(self.pick(out).detach().float().cpu())
        self.targs.append(yb[self.target_index].detach().cpu())

    def pick(self, out) -> torch.Tensor:
        raise NotImplementedError

    target_index = 0


class BalancedAccuracy(_OutputMetric):
    def __init__(self):
        super().__init__("bal_acc")

    def pick(self, out):
        return torch.sigmoid(out["det_logit"].float())

    @property
    def value(self):
        if not self.preds:
            return None
        return binary_metrics(torch.cat(self.targs), torch.cat(self.preds))["balanced_accuracy"]


class RocAuc(_OutputMetric):
    def __init__(self):
        super().__init__("auc")

    def pick(self, out):
        return torch.sigmoid(out["det_logit"].float())

    @property
    def value(self):
        if not self.preds:
            return None
        return safe_auc(torch.cat(self.targs), torch.cat(self.preds))


class AttributionAccuracy(_OutputMetric):
    target_index = 1

    def __init__(self):
        super().__init__("attr_acc")

    def pick(self, out):
        return out["attr_logits"].argmax(dim=-1)

    @property
    def value(self):
        if not self.preds:
            return None
        return attribution_accuracy(torch.cat(self.targs), torch.cat(self.preds))


def fastai_metrics() -> list[Metric]:
    """The metrics shown in fastai's progress table: balanced accuracy, AUC, attribution acc."""
    return [BalancedAccuracy(), RocAuc(), AttributionAccuracy()]

"""Open-set rejection scores: say "none of the generators I know" instead of the closest one.

The attribution head always names one of its known classes, even for a fake made by a generator
it never saw. An *open-set* attributor adds a rejection score ``s(x)`` and a threshold ``tau``:
a clip with ``s(x) > tau`` is called **unknown**, the others keep the head's answer.

Scores (one per clip; every one is oriented so that **higher = more likely unknown**):

* ``msp`` -- ``1 - max_c softmax(z)_c`` over the attribution logits ``z`` of the known classes
  (maximum softmax probability, Hendrycks & Gimpel 2017; POSE's rejection score): the baseline.
* ``energy`` -- ``E(x) = -log sum_c exp(z_c)`` (Liu et al. 2020): the logits' overall size, which
  the softmax throws away.
* ``centroid`` -- ``min_c || e/|e| - mu_c ||``: the Euclidean distance of the L2-normalised shared
  embedding to the nearest class centroid ``mu_c`` (the mean of the normalised training
  embeddings of class ``c``). This is the geometry AMDD's centroid loss (Eq. 5,
  :func:`amdd_kit.losses.centroid_loss`) trains: tight clusters, centroids at least a margin apart.
* ``knn`` -- the distance of ``e/|e|`` to its ``k``-th nearest normalised training embedding
  (Sun et al. 2022): no class structure assumed.

The detectors (``MaxSoftmax``, ``EnergyBased``, ``KNN``) come from ``pytorch-ood``; the centroid
distance is scikit-learn's ``euclidean_distances`` to the centroids of
:func:`amdd_kit.geometry.class_centroids`.

The threshold of each score keeps ``tpr`` (95 %) of the **validation clips of known generators**:
no unknown clip is used to choose it. The kit recommends one score by a rule fixed before any
measurement (:func:`recommended_score`): ``centroid`` when the run was trained with the centroid
loss (its objective shapes that distance), else ``knn``. Maximum softmax is always reported
beside it.

This module fits an :class:`OpenSet` from embeddings tables; :mod:`amdd_kit.openset` fits one from
a run and keeps it beside the run; :mod:`amdd_kit.openset_eval` measures how well it rejects.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import METHODS
from .geometry import class_centroids, stack_column

log = logging.getLogger(__name__)

#: the rejection scores, the baseline first
SCORES: tuple[str, ...] = ("msp", "energy", "centroid", "knn")
BASELINE = "msp"
#: one line per score, for tables and figures
SCORE_LABELS = {
    "msp": "maximum softmax (1 - max p)",
    "energy": "energy (-logsumexp of the logits)",
    "centroid": "distance to the nearest class centroid",
    "knn": "distance to the k-th nearest training clip",
}
#: the column added for the explorer (the recommended score, higher = more likely unknown)
REJECT_COLUMN = "reject_score"

__all__ = ["SCORES", "BASELINE", "SCORE_LABELS", "REJECT_COLUMN", "OpenSet", "fit_open_set",
           "recommended_score", "table_arrays", "normalise_rows"]


# -- the scores ---------------------------------------------------------------------------------
def _torch():
    import torch  # the detectors take tensors
    return torch


def normalise_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X [N,D]`` scaled to unit L2 length (float64)."""
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def recommended_score(cfg=None) -> str:
    """The score the kit recommends, by a rule fixed before measuring anything.

    ``centroid`` when the run was trained with AMDD's centroid loss (``cfg.loss.w_cent > 0``, or no
    config given): that loss makes the distance to the nearest centroid meaningful. Otherwise
    (CAD, or the ``no_centroid`` ablation) ``knn``, which assumes no class clusters.
    """
    if cfg is None:
        return "centroid"
    amdd_terms = cfg.model.arch == "amdd" or cfg.loss.cad_amdd_terms  # CAD adds them on request
    return "centroid" if amdd_terms and cfg.loss.w_cent > 0 else "knn"


@dataclass
class OpenSet:
    """A fitted open-set attributor: the rejection scores, their thresholds, a recommendation.

    Arrays (``D`` = shared embedding width, ``C`` = the model's classes, ``len(METHODS)``):
    ``classes`` the known class indices (into ``METHODS``: those with training clips);
    ``train_emb [M,D]`` L2-normalised training embeddings, ``train_labels [M]`` their classes;
    ``valid_emb [V,D]``, ``valid_logits [V,C]``, ``valid_labels [V]`` the validation clips
    (known generators only) that set the thresholds. ``centroids [K,D]`` follow ``classes``.
    """

    classes: list[int]
    train_emb: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    valid_emb: np.ndarray = field(repr=False)
    valid_logits: np.ndarray = field(repr=False)
    valid_labels: np.ndarray = field(repr=False)
    k: int = 5
    tpr: float = 0.95
    recommended: str = "centroid"
    model_sha1: str = ""
    centroids: np.ndarray = field(init=False, repr=False)
    thresholds: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.classes = [int(c) for c in self.classes]
        self.train_emb = normalise_rows(self.train_emb).astype(np.float32)
        self.valid_emb = np.asarray(self.valid_emb, dtype=np.float32)
        self.valid_logits = np.asarray(self.valid_logits, dtype=np.float32)
        self.train_labels = np.array(self.train_labels, dtype=np.int64)  # writable: torch
        self.valid_labels = np.array(self.valid_labels, dtype=np.int64)
        if self.recommended not in SCORES:
            raise ValueError(f"recommended must be one of {SCORES}, got {self.recommended!r}")
        if len(self.train_emb) == 0:
            raise ValueError("no training clips to fit the open set on")
        if len(self.train_emb) < self.k:
            log.warning("only %d training clips: knn uses k=%d instead of %d",
                        len(self.train_emb), len(self.train_emb), self.k)
            self.k = len(self.train_emb)
        if len(self.valid_emb) == 0:
            raise ValueError("no validation clips to set the thresholds on")
        _, self.centroids = class_centroids(self.train_emb, self.train_labels, self.classes)
        from pytorch_ood.detector import KNN

        torch = _torch()
        self._knn = KNN(None, k=self.k).fit_features(
            torch.from_numpy(self.train_emb), torch.from_numpy(self.train_labels))
        valid = self.score_arrays(self.valid_logits, self.valid_emb)
        self.thresholds = {s: float(np.quantile(v, self.tpr)) for s, v in valid.items()}

    # -- scoring ------------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """The threshold of the recommended score."""
        return self.thresholds[self.recommended]

    @property
    def class_names(self) -> list[str]:
        return [METHODS[c] for c in self.classes]

    def score_arrays(self, logits: np.ndarray, emb: np.ndarray) -> dict[str, np.ndarray]:
        """Every score of clips given as ``logits [N,C]`` and shared embeddings ``emb [N,D]``
        -> ``{score: [N] float64}`` (higher = more likely unknown)."""
        from pytorch_ood.detector import EnergyBased, MaxSoftmax
        from sklearn.metrics.pairwise import euclidean_distances

        if len(logits) == 0:
            return {s: np.zeros(0) for s in SCORES}
        torch = _torch()
        z = torch.as_tensor(np.asarray(logits, dtype=np.float64)[:, self.classes])
        u = normalise_rows(emb)
        return {
            "msp": 1.0 + MaxSoftmax.score(z).numpy(),          # pytorch-ood: -max p
            "energy": EnergyBased.score(z).numpy(),
            "centroid": euclidean_distances(u, self.centroids).min(axis=1),
            "knn": self._knn.predict_features(torch.from_numpy(u)).numpy().astype(np.float64),
        }

    def predict_arrays(self, logits: np.ndarray) -> np.ndarray:
        """The attribution among the known classes only -> ``[N]`` indices into ``METHODS``."""
        z = np.asarray(logits)[:, self.classes]
        return np.asarray(self.classes)[z.argmax(axis=1)]

    def scores(self, df: pd.DataFrame) -> pd.DataFrame:
        """One column per score (:data:`SCORES`) for the clips of an embeddings table (it needs
        the list columns ``attr_logits`` and ``embedding``); same index as ``df``."""
        logits, emb = table_arrays(df)
        return pd.DataFrame(self.score_arrays(logits, emb), index=df.index)

    def is_unknown(self, df: pd.DataFrame, score: str | None = None) -> np.ndarray:
        """``[N]`` bool: is the score (default: the recommended one) above its threshold?"""
        score = score or self.recommended
        return self.scores(df)[score].to_numpy() > self.thresholds[score]

    def add_columns(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with ``reject_score`` (the recommended score, higher = more likely
        unknown), ``is_unknown`` (above the threshold) and ``open_pred_method`` (the known class
        the head names, or ``"unknown"``): what the explorer colours by."""
        out = df.copy()
        s = self.scores(df)[self.recommended].to_numpy()
        out[REJECT_COLUMN] = s
        out["is_unknown"] = s > self.threshold
        pred = [METHODS[i] for i in self.predict_arrays(table_arrays(df)[0])]
        out["open_pred_method"] = np.where(out["is_unknown"], "unknown", pred)
        return out

    def without(self, cls: int) -> "OpenSet":
        """The same attributor with class ``cls`` removed from the known classes (its training
        and validation clips dropped, its logit ignored, thresholds set again): the cheap stand-in
        for leave-one-generator-out (:func:`amdd_kit.openset_eval.class_removal_table`)."""
        keep_t, keep_v = self.train_labels != cls, self.valid_labels != cls
        return OpenSet([c for c in self.classes if c != cls], self.train_emb[keep_t],
                       self.train_labels[keep_t], self.valid_emb[keep_v],
                       self.valid_logits[keep_v], self.valid_labels[keep_v], k=self.k,
                       tpr=self.tpr, recommended=self.recommended, model_sha1=self.model_sha1)

    def summary(self) -> dict[str, Any]:
        """What ``RUN/open_set.json`` holds (and the ``open_set`` block of ``metrics.json`` starts
        with)."""
        return {"recommended": self.recommended, "threshold": self.threshold,
                "thresholds": dict(self.thresholds), "tpr": self.tpr, "k": self.k,
                "classes": self.class_names, "n_train": int(len(self.train_emb)),
                "n_valid": int(len(self.valid_emb)), "model_sha1": self.model_sha1,
                "orientation": "higher = more likely an unknown generator",
                "rule": "centroid if trained with the centroid loss (Eq. 5), else knn; "
                        "thresholds keep tpr of the validation clips of known generators"}


def table_arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(attr_logits [N,C], embedding [N,D])`` of an embeddings table."""
    if "attr_logits" not in df.columns:
        raise KeyError("the embeddings table has no 'attr_logits' column (it was written by an "
                       "older amdd-kit): score the run again with `amdd-kit evaluate --run RUN` "
                       "or notebook 04")
    if len(df) == 0:
        return np.zeros((0, len(METHODS))), np.zeros((0, 1))
    return stack_column(df, "attr_logits"), stack_column(df, "embedding")


def _known_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["method_idx"].astype(int) >= 0]


def _subsample(df: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """At most ``n`` rows, the same share of every class (for the bank of a large run)."""
    if len(df) <= n:
        return df
    frac = n / len(df)
    return df.groupby("method_idx", group_keys=False).sample(frac=frac, random_state=seed)


def fit_open_set(train: pd.DataFrame, valid: pd.DataFrame, *, k: int = 5, tpr: float = 0.95,
                 recommended: str | None = None, max_bank: int = 10_000,
                 model_sha1: str = "") -> OpenSet:
    """Fit the open-set attributor on two embeddings tables.

    ``train``, ``valid``: ``embed_store`` rows (``attr_logits``, ``embedding``, ``method_idx``) of
    the training split (the bank and the centroids) and of the validation split (the
    thresholds); clips of no known class (``method_idx < 0``) are ignored. ``max_bank`` caps the
    clips kept of each table; ``recommended`` defaults to :func:`recommended_score` of no config;
    ``model_sha1`` names the weights the tables came from. A run's own:
    :func:`amdd_kit.openset.fit_run_open_set`.
    """
    if valid is None:
        raise ValueError("fit_open_set needs the validation table too (the thresholds)")
    train, valid = _known_rows(train), _known_rows(valid)
    if len(train) == 0:
        raise ValueError("no training clips of a known class to fit the open set on")
    classes = sorted(set(train["method_idx"].astype(int)))
    train, valid = _subsample(train, max_bank), _subsample(valid, max_bank)
    valid = valid[valid["method_idx"].astype(int).isin(classes)]
    t_logits, t_emb = table_arrays(train)
    v_logits, v_emb = table_arrays(valid)
    return OpenSet(classes, t_emb, train["method_idx"].to_numpy(), v_emb, v_logits,
                   valid["method_idx"].to_numpy(), k=k, tpr=tpr,
                   recommended=recommended or recommended_score(None), model_sha1=model_sha1)

"""Embedding geometry: how the trained model arranges clips in its representation spaces.

Everything here works on plain arrays so that it can be used on any embedding:

* ``X`` float ``[N, D]``: one row per clip (the shared embedding ``embedding``, or the visual /
  audio fingerprints ``f_v`` / ``f_a`` of ``embeddings.parquet``, named as the model names them);
* ``labels`` ``[N]``: one class name (or index) per row, usually the generator ``method``.

What the functions measure:

* :func:`umap_2d` -- a 2-D map of the space for plotting (UMAP, fixed seed); :func:`umap_map`
  keeps the fitted map (:class:`Map2D`) so new clips can be placed on it;
* :func:`centroid_distances` / :func:`nearest_pairs` -- how far the class centroids lie from each
  other, and which generators are the easiest to confuse;
* :func:`cmffc_alignment` / :func:`per_sample_alignment` -- whether the visual and audio
  fingerprints of a class agree, which is what the CMFFC loss (Eq. 4 in ``amdd_kit/losses.py``)
  asks for;
* :func:`silhouette`, :func:`cluster_scores` -- silhouette and Davies-Bouldin indices of the class clusters;
* :func:`linear_probe_accuracy` -- how much class information a frozen embedding holds, read by a
  logistic regression.

``umap`` is imported lazily inside :func:`umap_2d` (the import alone costs seconds) and numba's
cache is pointed at a writable folder first (:func:`amdd_kit.paths.tool_caches`).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .config import METHOD_TRACES
from .paths import tool_caches

log = logging.getLogger(__name__)

__all__ = [
    "stack_column", "umap_2d", "umap_map", "Map2D", "class_centroids", "centroid_distances",
    "nearest_pairs",
    "trace_report",
    "cmffc_alignment", "per_sample_alignment", "silhouette", "cluster_scores", "linear_probe_accuracy",
    "linear_probe_predict",
]


# -- helpers ------------------------------------------------------------------------------------
def stack_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """Turn a list-valued DataFrame column (e.g. ``embedding``) into a float32 ``[N, D]`` array."""
    if column not in df.columns:
        raise KeyError(f"column {column!r} not in the embeddings table; have {list(df.columns)}")
    if len(df) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in df[column].to_numpy()])


def _as_2d(X: np.ndarray, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D], got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _unit(X: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), eps)


# -- 2-D maps -----------------------------------------------------------------------------------
@dataclass
class Map2D:
    """A fitted 2-D map of one space: where its points lie, and where new points would.

    Attributes:
        xy: float32 ``[N, 2]``, the map of the fitted rows ``X``.
        X: float ``[N, D]``, the fitted rows (the space itself).
        model: the fitted ``umap.UMAP`` (its ``transform`` places new rows on the same map), or
            None (a map given as plain coordinates, or PCA for fewer than 5 points).
    """

    xy: np.ndarray
    X: np.ndarray
    model: Any = None

    def transform(self, X_new: np.ndarray, k: int = 5) -> np.ndarray:
        """Place new rows ``[M, D]`` on this map -> ``[M, 2]`` float32.

        With a UMAP model: ``UMAP.transform`` (the new rows join the fitted neighbour graph and
        are laid out against the fixed map). Without one: each new row goes to the
        distance-weighted mean position of its ``k`` nearest fitted rows (cosine distance), the
        same starting position UMAP's own transform uses.
        """
        X_new = _as_2d(X_new, "X_new")
        if X_new.shape[1] != self.X.shape[1]:
            raise ValueError(f"new rows have {X_new.shape[1]} dimensions, the map's space "
                             f"{self.X.shape[1]}")
        if self.model is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                return np.asarray(self.model.transform(X_new), dtype=np.float32)
        D = 1.0 - _unit(X_new) @ _unit(_as_2d(self.X)).T                 # [M, N] cosine
        k = min(k, D.shape[1])
        near = np.argsort(D, axis=1, kind="stable")[:, :k]
        w = 1.0 / (np.take_along_axis(D, near, 1) + 1e-6)
        return (np.einsum("mk,mkj->mj", w, self.xy[near]) / w.sum(1, keepdims=True)
                ).astype(np.float32)


def umap_map(X: np.ndarray, seed: int = 0, n_neighbors: int = 15,
             metric: str = "cosine", min_dist: float = 0.1) -> Map2D:
    """:func:`umap_2d` that keeps the fitted model: a :class:`Map2D` whose ``transform``
    places new clips (e.g. a student's own video) on the same map."""
    X = _as_2d(X)
    n = len(X)
    if n < 5:
        return Map2D(umap_2d(X, seed, n_neighbors, metric, min_dist), X, None)
    tool_caches()             # numba's JIT cache folder, before umap imports numba
    import umap  # lazy: costs seconds

    k = int(max(2, min(n_neighbors, n - 1)))
    reducer = umap.UMAP(n_neighbors=k, n_components=2, metric=metric, min_dist=min_dist,
                        random_state=seed, init="spectral" if n > 10 else "random")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        warnings.filterwarnings("ignore", message=".*random_state.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        xy = reducer.fit_transform(X).astype(np.float32)
    return Map2D(xy, X, reducer)


def umap_2d(X: np.ndarray, seed: int = 0, n_neighbors: int = 15,
            metric: str = "cosine", min_dist: float = 0.1) -> np.ndarray:
    """Project ``X`` ``[N, D]`` to 2-D with UMAP -> ``[N, 2]`` float32.

    ``n_neighbors`` is clipped to ``N - 1`` (UMAP needs it below the number of points), and
    ``random_state=seed`` makes the map reproducible (UMAP then runs single-threaded and warns;
    that warning is silenced). With fewer than 5 points a UMAP graph is meaningless, so the first
    two principal components are returned instead (logged). :func:`umap_map` keeps the fitted
    model, to place new points on the map.
    """
    X = _as_2d(X)
    n = len(X)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n < 5:
        log.warning("umap_2d: only %d points; returning the first two principal components", n)
        from sklearn.decomposition import PCA

        out = np.zeros((n, 2), dtype=np.float32)
        k = min(2, n - 1, X.shape[1])     # n points span at most n - 1 directions
        if k:
            out[:, :k] = PCA(n_components=k, svd_solver="full").fit_transform(X)
        return out
    return umap_map(X, seed, n_neighbors, metric, min_dist).xy


# -- centroids ----------------------------------------------------------------------------------
def class_centroids(X: np.ndarray, labels: Sequence, classes: Sequence | None = None
                    ) -> tuple[list, np.ndarray]:
    """Mean vector of each class -> (class names ``[K]``, centroids ``[K, D]``).

    ``classes`` fixes the order (and drops classes absent from ``labels``); by default the
    classes are sorted.
    """
    X = _as_2d(X)
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise ValueError(f"{len(labels)} labels for {len(X)} rows")
    present = set(labels.tolist())
    order = [c for c in (classes if classes is not None else sorted(present)) if c in present]
    C = np.stack([X[labels == c].mean(0) for c in order]) if order else np.zeros((0, X.shape[1]))
    return order, C


def centroid_distances(X: np.ndarray, labels: Sequence, metric: str = "cosine",
                       classes: Sequence | None = None) -> pd.DataFrame:
    """Distances between class centroids -> square DataFrame ``[K, K]`` (index = columns = class).

    ``metric="cosine"``: ``1 - cos(c_i, c_j)`` (0 = same direction, 2 = opposite), the geometry
    the L2-normalised losses act on; ``metric="euclidean"``: ``||c_i - c_j||``.
    """
    from sklearn.metrics import pairwise_distances

    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    names, C = class_centroids(X, labels, classes)
    D = pairwise_distances(C, metric=metric) if len(C) else np.zeros((0, 0))
    return pd.DataFrame(D, index=names, columns=names)


def nearest_pairs(D: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The ``k`` closest distinct class pairs of a distance matrix (the most confusable).

    Returns columns ``a``, ``b``, ``distance``, sorted by distance (each pair once).
    """
    names = list(D.index)
    rows = [(names[i], names[j], float(D.iat[i, j]))
            for i in range(len(names)) for j in range(i + 1, len(names))]
    out = pd.DataFrame(rows, columns=["a", "b", "distance"])
    return out.sort_values("distance", kind="stable").head(k).reset_index(drop=True)


# -- cross-modal fingerprint alignment (CMFFC) -------------------------------------------------
def per_sample_alignment(f_v: np.ndarray, f_a: np.ndarray) -> np.ndarray:
    """Cosine between each clip's visual and audio fingerprint -> ``[N]`` in -1..1."""
    f_v, f_a = _as_2d(f_v, "f_v"), _as_2d(f_a, "f_a")
    if f_v.shape != f_a.shape:
        raise ValueError(f"f_v {f_v.shape} and f_a {f_a.shape} must have the same shape")
    return np.sum(_unit(f_v) * _unit(f_a), axis=1)


def cmffc_alignment(f_v: np.ndarray, f_a: np.ndarray, labels: Sequence,
                    classes: Sequence | None = None) -> pd.DataFrame:
    """Per class: do the visual and audio fingerprints agree? (what CMFFC, Eq. 4, trains for).

    Returns one row per class with columns ``class``, ``n``, ``centroid_cos`` (cosine between the
    visual and the audio fingerprint centroids of the class) and ``mean_sample_cos`` (average of
    the per-clip cosine ``cos(f_v, f_a)``). Both are 1 for perfect agreement.
    """
    f_v, f_a = _as_2d(f_v, "f_v"), _as_2d(f_a, "f_a")
    if f_v.shape != f_a.shape:
        raise ValueError(f"f_v {f_v.shape} and f_a {f_a.shape} must have the same shape")
    labels = np.asarray(labels)
    names, Cv = class_centroids(f_v, labels, classes)
    _, Ca = class_centroids(f_a, labels, classes)
    cen = np.sum(_unit(Cv) * _unit(Ca), axis=1)
    per = per_sample_alignment(f_v, f_a)
    rows = [{"class": c, "n": int((labels == c).sum()), "centroid_cos": float(cen[i]),
             "mean_sample_cos": float(per[labels == c].mean())} for i, c in enumerate(names)]
    return pd.DataFrame(rows, columns=["class", "n", "centroid_cos", "mean_sample_cos"])


def trace_report(df: pd.DataFrame) -> pd.DataFrame:
    """What CMFFC (Eq. 4) trained for, measured so that a collapse cannot pass for agreement.

    Reads an embeddings table (``trace_visual``, ``trace_audio``, ``pred_trace_visual``,
    ``pred_trace_audio``, ``method``, ``pred_method``, ``f_v``, ``f_a``) and returns
    one row per check with ``value`` and the ``baseline`` a model without the skill gets:

    * ``visual trace accuracy`` / ``audio trace accuracy`` -- does each fingerprint name its own
      modality's trace? Baseline: always naming the most frequent trace (what collapsed,
      constant fingerprints score at best);
    * ``agreement`` -- share of clips where the generator implied by the two traces equals the
      fused head's attribution. Baseline: the agreement of two independent guessers with the
      same marginals;
    * ``visual spread`` / ``audio spread`` -- 1 - mean pairwise cosine of the fingerprints
      (0 = collapsed to one direction). Baseline 0.
    """
    from .metrics import majority_share

    known = df[df["trace_visual"].astype(str) != ""] if "trace_visual" in df.columns else df
    rows = []
    for mod in ("visual", "audio"):
        y, p = known[f"trace_{mod}"].astype(str), known[f"pred_trace_{mod}"].astype(str)
        rows.append({"check": f"{mod} trace accuracy", "value": float((y == p).mean()),
                     "baseline": majority_share(y)})
    implied = {v: k for k, v in METHOD_TRACES.items()}
    pairs = list(zip(known["pred_trace_visual"].astype(str), known["pred_trace_audio"].astype(str)))
    from_traces = pd.Series([implied.get(t, "") for t in pairs], index=known.index)
    pm = known["pred_method"].astype(str)
    agree = float((from_traces == pm).mean()) if len(known) else float("nan")
    a = from_traces.value_counts(normalize=True)
    b = pm.value_counts(normalize=True)
    chance = float(sum(a.get(k, 0.0) * b.get(k, 0.0) for k in set(a.index) | set(b.index)))
    rows.append({"check": "agreement (traces vs fused attribution)", "value": agree,
                 "baseline": chance})
    for mod, col in (("visual", "f_v"), ("audio", "f_a")):
        U = _unit(_as_2d(np.stack(known[col].to_numpy()))) if len(known) else np.zeros((0, 1))
        n = len(U)
        mean_cos = float((U.sum(0) @ U.sum(0) - n) / (n * (n - 1))) if n > 1 else float("nan")
        rows.append({"check": f"{mod} spread (1 - mean cosine)", "value": 1.0 - mean_cos,
                     "baseline": 0.0})
    return pd.DataFrame(rows, columns=["check", "value", "baseline"])


# -- cluster quality ----------------------------------------------------------------------------
def silhouette(X: np.ndarray, labels: Sequence, metric: str = "euclidean") -> float:
    """scikit-learn's silhouette of the classes of ``labels`` ``[N]`` in ``X`` ``[N, D]``
    (-1..1, higher is better); NaN unless there are 2..N-1 classes (it is undefined there)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    k = len(set(labels.tolist()))
    return float(silhouette_score(X, labels, metric=metric)) if 2 <= k <= len(X) - 1 \
        else float("nan")


def cluster_scores(X: np.ndarray, labels: Sequence, metric: str = "euclidean"
                   ) -> dict[str, float]:
    """:func:`silhouette` (higher is better, -1..1) and Davies-Bouldin (lower is better, >= 0).

    Both need at least 2 classes and fewer classes than points; otherwise NaN (logged).
    """
    from sklearn.metrics import davies_bouldin_score

    X = _as_2d(X)
    labels = np.asarray(labels)
    k = len(set(labels.tolist()))
    if not 2 <= k <= len(X) - 1:
        log.warning("cluster_scores: need 2..N-1 classes, got %d classes for %d points", k, len(X))
        return {"silhouette": float("nan"), "davies_bouldin": float("nan")}
    return {"silhouette": silhouette(X, labels, metric),
            "davies_bouldin": float(davies_bouldin_score(X, labels))}


def linear_probe_predict(X_train: np.ndarray, y_train: Sequence, X_test: np.ndarray,
                         C: float = 1.0, seed: int = 0) -> np.ndarray:
    """Fit a logistic regression on frozen vectors ``X_train [N,d]`` (standardised with the
    training statistics) and return its predictions ``[N_test]`` for ``X_test`` (a "linear probe")."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test = _as_2d(X_train, "X_train"), _as_2d(X_test, "X_test")
    y_train = np.asarray(y_train)
    if len(set(y_train.tolist())) < 2:
        raise ValueError("linear probe: the training labels hold a single class")
    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(C=C, max_iter=2000, random_state=seed))
    return probe.fit(X_train, y_train).predict(X_test)


def linear_probe_accuracy(X_train: np.ndarray, y_train: Sequence, X_test: np.ndarray,
                          y_test: Sequence, C: float = 1.0, seed: int = 0) -> float:
    """Accuracy of :func:`linear_probe_predict` on ``(X_test, y_test)``. Used e.g. to ask whether
    a model trained only for real/fake detection still separates the generators."""
    pred = linear_probe_predict(X_train, y_train, X_test, C, seed)
    return float((pred == np.asarray(y_test)).mean())

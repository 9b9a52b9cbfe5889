"""Embedding geometry on arrays of known structure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amdd_kit import geometry as G


def blobs(n_per=30, k=3, d=16, spread=0.05, seed=0):
    """k well-separated Gaussian blobs in d dims -> (X [k*n_per, d], labels [k*n_per])."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 5
    X = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat([f"c{i}" for i in range(k)], n_per)
    return X, y, centres


def test_separated_blobs_cluster_well_and_permuted_labels_do_not():
    X, y, _ = blobs()
    good = G.cluster_scores(X, y)
    assert good["silhouette"] > 0.9
    assert good["davies_bouldin"] < 0.2
    rng = np.random.default_rng(1)
    bad = G.cluster_scores(X, rng.permutation(y))
    assert abs(bad["silhouette"]) < 0.15
    assert bad["davies_bouldin"] > 3


def test_cluster_scores_single_class_is_nan():
    X, _, _ = blobs(k=1)
    out = G.cluster_scores(X, ["a"] * len(X))
    assert np.isnan(out["silhouette"]) and np.isnan(out["davies_bouldin"])


def test_centroid_distances_match_hand_computation_and_nearest_pairs():
    X = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 2.0, 0], [1.0, 1.0, 0]])
    y = ["a", "a", "b", "b", "c"]
    cos = G.centroid_distances(X, y, "cosine")
    assert list(cos.index) == ["a", "b", "c"]
    assert cos.loc["a", "b"] == pytest.approx(1.0)           # orthogonal
    assert cos.loc["a", "c"] == pytest.approx(1 - 1 / np.sqrt(2))
    assert np.allclose(cos.values, cos.values.T) and np.allclose(np.diag(cos.values), 0)
    euc = G.centroid_distances(X, y, "euclidean")
    assert euc.loc["a", "b"] == pytest.approx(np.hypot(1.0, 1.5))   # (1,0,0) vs (0,1.5,0)
    pairs = G.nearest_pairs(cos, k=2)
    assert list(pairs.columns) == ["a", "b", "distance"]
    assert len(pairs) == 2
    assert {pairs.a[0], pairs.b[0]} in ({"a", "c"}, {"b", "c"})
    assert pairs.distance.is_monotonic_increasing
    with pytest.raises(ValueError):
        G.centroid_distances(X, y, "manhattan")


def test_identical_visual_and_audio_centroids_align_perfectly():
    X, y, _ = blobs(d=8)
    rng = np.random.default_rng(0)
    f_v = X
    # audio fingerprints: a different sample noise around the same class centres
    f_a = X + 0.01 * rng.normal(size=X.shape)
    al = G.cmffc_alignment(f_v, f_a, y)
    assert list(al["class"]) == ["c0", "c1", "c2"]
    assert (al.n == 30).all()
    assert np.allclose(al.centroid_cos, 1.0, atol=1e-3)
    assert (al.mean_sample_cos > 0.99).all()


def test_unrelated_fingerprints_align_near_zero():
    rng = np.random.default_rng(0)
    f_v = rng.normal(size=(400, 32))
    f_a = rng.normal(size=(400, 32))
    per = G.per_sample_alignment(f_v, f_a)
    assert per.shape == (400,)
    assert abs(per.mean()) < 0.05 and per.max() <= 1 + 1e-9
    assert np.allclose(G.per_sample_alignment(f_v, -f_v), -1)
    with pytest.raises(ValueError):
        G.per_sample_alignment(f_v, f_a[:, :10])


def test_linear_probe_reads_separable_labels_and_not_permuted_ones():
    X, y, _ = blobs(n_per=40, k=4, spread=1.0)
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:100], idx[100:]
    assert G.linear_probe_accuracy(X[tr], y[tr], X[te], y[te]) > 0.95
    y_perm = np.random.default_rng(2).permutation(y)
    acc = G.linear_probe_accuracy(X[tr], y_perm[tr], X[te], y_perm[te])
    assert acc < 0.6          # chance is 0.25; 60 test points


def test_stack_column_and_bad_input():
    df = pd.DataFrame({"e": [np.ones(3, np.float32), np.zeros(3, np.float32)]})
    assert G.stack_column(df, "e").shape == (2, 3)
    with pytest.raises(KeyError):
        G.stack_column(df, "missing")
    with pytest.raises(ValueError):
        G.cluster_scores(np.array([[np.nan, 1.0], [0, 1], [1, 1]]), [0, 1, 1])


def test_umap_small_data_is_deterministic_and_keeps_blobs_apart():
    X, y, _ = blobs(n_per=12, k=2, d=8)
    a = G.umap_2d(X, seed=0, n_neighbors=50)     # clipped below N=24
    b = G.umap_2d(X, seed=0, n_neighbors=50)
    assert a.shape == (24, 2)
    assert np.allclose(a, b)
    # the two blobs stay separated in the map
    assert G.cluster_scores(a, y)["silhouette"] > 0.5
    tiny = G.umap_2d(X[:3])
    assert tiny.shape == (3, 2)


def test_pca_fallback_and_centroid_distances_equal_the_hand_written_ones_they_replaced():
    """The few-points map is sklearn's PCA and the centroid distances sklearn's
    ``pairwise_distances``; the old numpy code, written out here, gives the same numbers (the
    PCA axes up to sign)."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4):
        X = rng.normal(size=(n, 6))
        Xc = X - X.mean(0)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        old = np.zeros((n, 2))
        old[:, :min(2, len(vt))] = Xc @ vt[:2].T
        new = G.umap_2d(X)
        assert new.shape == (n, 2) and new.dtype == np.float32
        for j in range(2):
            sign = 1.0 if np.dot(new[:, j], old[:, j]) >= 0 else -1.0
            np.testing.assert_allclose(sign * new[:, j], old[:, j], atol=1e-5)
    X, y, _ = blobs(k=5, d=12, spread=1.0)
    names, C = G.class_centroids(X, y)
    U = C / np.linalg.norm(C, axis=1, keepdims=True)
    old = {"cosine": 1.0 - U @ U.T,
           "euclidean": np.linalg.norm(C[:, None, :] - C[None, :, :], axis=-1)}
    for metric, D in old.items():
        D = np.clip(D, 0.0, None)
        np.fill_diagonal(D, 0.0)
        new = G.centroid_distances(X, y, metric)
        assert list(new.index) == names == list(new.columns)
        np.testing.assert_allclose(new.to_numpy(), D, rtol=1e-9, atol=1e-9)

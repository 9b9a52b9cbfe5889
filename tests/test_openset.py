"""Open-set scores, metrics and protocols (amdd_kit.openset_scores, .openset, .openset_eval,
metrics.open_set_metrics) on synthetic embeddings with a known answer."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp, softmax
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from amdd_kit.config import METHODS
from amdd_kit.metrics import open_set_metrics
from amdd_kit.openset import load_open_set, save_open_set
from amdd_kit.openset_eval import class_removal_table, open_set_block, protocol_table
from amdd_kit.openset_scores import SCORES, fit_open_set

C, D = len(METHODS), 16


def table(n_per: dict[int, int], rng, spread=0.15, centres=None, logit_scale=4.0,
          unknown: bool = False) -> pd.DataFrame:
    """Clips around one centre per class; the logits point at the class (a trained head).

    ``unknown``: the clips sit at fresh random centres and their logits are flat: what a model
    that never saw their generator gives.
    """
    rows = []
    for c, n in n_per.items():
        centre = centres[c] if not unknown else rng.normal(size=D)
        for _ in range(n):
            e = centre + spread * rng.normal(size=D)
            z = rng.normal(scale=0.5, size=C)
            if not unknown:
                z[c] += logit_scale
            rows.append({"method_idx": c if not unknown else -1, "method": METHODS[c],
                         "embedding": e.astype(np.float32), "attr_logits": z.astype(np.float32)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = {c: rng.normal(size=D) for c in range(C)}
    known = {c: 20 for c in range(C - 1)}           # the last class is never trained
    train = table(known, rng, centres=centres)
    valid = table({c: 10 for c in known}, rng, centres=centres)
    test = table({c: 10 for c in known}, rng, centres=centres)
    unk = table({C - 1: 30}, rng, centres=centres, unknown=True)
    return train, valid, test, unk


def test_scores_equal_their_definitions(data):
    train, valid, test, _ = data
    os_ = fit_open_set(train, valid, k=3)
    assert os_.classes == list(range(C - 1))
    sc = os_.scores(test)
    assert list(sc.columns) == list(SCORES) and len(sc) == len(test)
    z = np.stack(test["attr_logits"])[:, :C - 1]       # the untrained class's logit is ignored
    u = np.stack(test["embedding"]).astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    np.testing.assert_allclose(sc["msp"], 1 - softmax(z, axis=1).max(1), atol=1e-6)
    np.testing.assert_allclose(sc["energy"], -logsumexp(z, axis=1), atol=1e-5)
    tu = np.stack(train["embedding"]).astype(np.float64)
    tu /= np.linalg.norm(tu, axis=1, keepdims=True)
    labels = train["method_idx"].to_numpy()
    cents = np.stack([tu[labels == c].mean(0) for c in range(C - 1)])
    d = np.linalg.norm(u[:, None] - cents[None], axis=-1).min(1)
    np.testing.assert_allclose(sc["centroid"], d, atol=1e-5)
    dist, _ = NearestNeighbors(n_neighbors=3).fit(tu).kneighbors(u)
    np.testing.assert_allclose(sc["knn"], dist[:, -1], atol=1e-5)


def test_thresholds_keep_the_validation_share(data):
    train, valid, _, _ = data
    for tpr in (0.95, 0.8):
        os_ = fit_open_set(train, valid, tpr=tpr)
        sc = os_.scores(valid)
        for s in SCORES:
            kept = float((sc[s] <= os_.thresholds[s]).mean())
            assert abs(kept - tpr) <= 1.5 / len(valid), (s, tpr, kept)
        assert os_.is_unknown(valid).mean() == pytest.approx(1 - tpr, abs=1.5 / len(valid))


def test_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(0, 1, 200), rng.normal(1.2, 1, 80)]
    s[:5] = s[200:205]                                 # ties between known and unknown
    unk = np.r_[np.zeros(200, bool), np.ones(80, bool)]
    m = open_set_metrics(s, unk)
    assert m["auroc"] == pytest.approx(roc_auc_score(unk, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(~unk, -s)                  # known = positive, lower score = known
    assert m["fpr_at_95tpr"] == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    # no skill: a score unrelated to the label
    m0 = open_set_metrics(rng.normal(size=4000), rng.random(4000) < 0.3)
    assert abs(m0["auroc"] - 0.5) < 0.03 and abs(m0["fpr_at_95tpr"] - 0.95) < 0.03


def test_oscr_and_open_set_accuracy_by_hand():
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.8])
    unk = np.array([0, 0, 0, 0, 1, 1], bool)
    label = np.array([1, 2, 3, 4, -1, -1])
    pred = np.array([1, 2, 0, 4, 5, 5])                # clip 2 wrong; clip 3 right but far out
    m = open_set_metrics(s, unk, pred, label, threshold=0.5)
    assert m["closed_set_accuracy"] == 0.75
    assert m["known_kept"] == 0.75 and m["unknown_rejected"] == 0.5
    # accepted and right: clips 0, 1; rejected unknown: clip 5 -> 3 of 6
    assert m["open_set_accuracy"] == pytest.approx(3 / 6)
    # OSCR: CCR against FPR(unknown accepted), thresholds at every score:
    # FPR 0 -> CCR 2/4 (clips 0, 1); FPR 0.5 (0.4) -> 2/4; FPR 1 (0.8) -> 2/4; 0.9 -> 3/4
    # area = 0.5 * 2/4 + 0.5 * 2/4 = 0.5
    assert m["oscr"] == pytest.approx(0.5)
    assert m["auroc"] == pytest.approx(roc_auc_score(unk, s))


def test_unknown_clips_are_rejected_and_msp_is_beaten(data):
    """Flat logits and fresh centres: every score separates them; the distances perfectly."""
    train, valid, test, unk = data
    os_ = fit_open_set(train, valid)
    t = protocol_table(os_, test, unk)
    assert set(t.index) == set(SCORES)
    assert (t["auroc"] > 0.9).all(), t["auroc"]
    assert t.loc["centroid", "auroc"] == 1.0 and t.loc["knn", "auroc"] == 1.0
    assert t.loc["centroid", "unknown_rejected"] == 1.0
    assert t.loc["centroid", "open_set_accuracy"] > 0.9
    # a score that does not know the unknowns: known clips against more known clips
    t0 = protocol_table(os_, test.iloc[::2], test.iloc[1::2])
    assert (t0["auroc"] < 0.75).all(), t0["auroc"]


def test_add_columns_names_unknowns(data):
    train, valid, test, unk = data
    os_ = fit_open_set(train, valid)
    both = pd.concat([test, unk], ignore_index=True)
    out = os_.add_columns(both)
    assert {"reject_score", "is_unknown", "open_pred_method"} <= set(out.columns)
    assert (out.loc[out.method_idx == -1, "open_pred_method"] == "unknown").all()
    kept = out[(out.method_idx >= 0) & ~out.is_unknown]
    assert (kept["open_pred_method"] == kept["method"]).mean() > 0.9


def test_save_load_round_trip(tmp_path, data):
    train, valid, test, _ = data
    os_ = fit_open_set(train, valid, recommended="knn")
    save_open_set(os_, tmp_path)
    meta = json.loads((tmp_path / "open_set.json").read_text())
    assert meta["recommended"] == "knn" and meta["threshold"] == os_.thresholds["knn"]
    back = load_open_set(tmp_path)
    pd.testing.assert_frame_equal(back.scores(test), os_.scores(test), atol=1e-5)
    assert back.thresholds == pytest.approx(os_.thresholds)


def test_class_removal_and_block(data):
    train, valid, test, unk = data
    os_ = fit_open_set(train, valid)
    cr = class_removal_table(os_, test, classes=["rtvc", "faceswap"])
    assert set(cr.index.get_level_values("held_out")) == {"rtvc", "faceswap"}
    # a removed class has its own tight cluster far from the others: the distances find it
    assert (cr.xs("centroid", level="score")["auroc"] > 0.95).all()
    block = open_set_block(os_, test, cross={"heldout": unk}, cross_known={"heldout": test},
                           unseen={"fsgan-wav2lip": unk})
    entry = block["cross_dataset"]["heldout"]
    assert block["recommended"] == "centroid" and entry["auroc"] == 1.0
    assert set(entry["scores"]) == set(SCORES)
    assert block["unseen_generators"]["fsgan-wav2lip"]["n_unknown"] == len(unk)
    json.dumps(block)
    assert entry["known_elsewhere_rejected"]["centroid"] < 0.3


def test_missing_logits_is_a_clear_error(data):
    train, valid, test, _ = data
    os_ = fit_open_set(train, valid)
    with pytest.raises(KeyError, match="amdd-kit evaluate"):
        os_.scores(test.drop(columns="attr_logits"))


def test_cluster_geometry_measures_what_the_centroid_score_rests_on(data):
    from amdd_kit.openset_eval import centroid_report, cluster_table
    train, valid, test, unk = data
    os_ = fit_open_set(train, valid)
    ct = cluster_table(os_)
    assert list(ct.index) == [METHODS[c] for c in os_.classes]
    # the clusters are 0.15 * sqrt(16) wide before normalising and the centres ~sqrt(2) apart
    assert (ct["radius_over_gap"] < 0.5).all(), ct
    rep = centroid_report(os_, {"known": test, "unknown": unk})
    assert rep.loc["known", "inside_a_cluster"] > 0.8
    assert rep.loc["unknown", "inside_a_cluster"] == 0.0
    assert rep.loc["unknown", "rejected"] == 1.0
    assert rep.loc["unknown", "median_distance"] > rep.loc["known", "median_distance"]
    # a test clip sitting on a centroid is inside its cluster and accepted
    on = test.iloc[:1].copy()
    on.at[on.index[0], "embedding"] = os_.centroids[0].astype(np.float32)
    r = centroid_report(os_, {"on": on})
    assert r.loc["on", "inside_a_cluster"] == 1.0 and r.loc["on", "rejected"] == 0.0
    assert r.loc["on", "nearest_class"] == METHODS[os_.classes[0]]


def test_predict_verdict_says_unknown_above_the_threshold(data):
    """What `amdd-kit predict` adds to a video's JSON (inference._open_set_verdict)."""
    from amdd_kit.inference import _open_set_verdict
    train, valid, test, unk = data
    os_ = fit_open_set(train, valid)

    def arrays(df):
        logits = np.stack(df["attr_logits"])
        return {"attr_logits": logits, "embedding": np.stack(df["embedding"])}, \
            softmax(logits, axis=1).mean(0)

    r, probs = arrays(test[test.method_idx == 2].head(3))
    v = _open_set_verdict(os_, r, probs)
    assert v["open_set"]["unknown"] is False and "generator" not in v       # keeps the head's
    assert v["closed_set_generator"] == METHODS[2]
    assert v["open_set"]["score"] == "centroid" and v["open_set"]["clips_rejected"] == 0
    r, probs = arrays(unk.head(3))
    probs = np.eye(C)[C - 1]              # the head's favourite is the class never trained
    v = _open_set_verdict(os_, r, probs)
    assert v["generator"] == "unknown" and v["open_set"]["unknown"] is True
    assert v["open_set"]["value"] > v["open_set"]["threshold"]
    assert v["closed_set_generator"] in os_.class_names                      # a trained class
    assert _open_set_verdict(None, r, probs) == {"closed_set_generator": METHODS[C - 1],
                                                 "open_set": None}


def test_open_set_figures(data):
    from amdd_kit import viz
    train, valid, test, unk = data
    os_ = fit_open_set(train, valid)
    both = pd.concat([test, unk], ignore_index=True)
    group = np.where(both["method_idx"] >= 0, "known (test)", "unknown")
    fig = viz.score_histograms(os_.scores(both), group, os_.thresholds)
    assert len(fig.data) == 2 * len(SCORES) and {t.name for t in fig.data} == set(group)
    lines = sorted(sh.x0 for sh in fig.layout.shapes)
    assert lines == pytest.approx(sorted(os_.thresholds.values()))
    folds = pd.DataFrame({"msp": [0.6, 0.8], "centroid": [0.9, 1.0]}, index=["a", "b"])
    fig = viz.fold_bars(folds, recommended="centroid")
    assert list(fig.data[1].x) == ["a", "b", "mean"] and fig.data[1].y[-1] == pytest.approx(0.95)
    assert fig.data[1].name == "centroid (recommended)"
    fig = viz.distance_boxes({"k": [0.1, 0.2], "u": [0.5]}, threshold=0.3, half_gap=0.45)
    assert len(fig.data) == 2 and sorted(sh.y0 for sh in fig.layout.shapes) == [0.3, 0.45]


def test_open_set_modules_define_what_they_export():
    """The open set lives in three rooms, each defining what it exports (no re-exports): the
    scores (openset_scores), a run's open set (openset) and the protocols (openset_eval); the
    metrics they report are metrics.open_set_metrics, written once."""
    import importlib
    import inspect

    from amdd_kit import metrics, openset, openset_eval, openset_scores

    owners = {"OpenSet": openset_scores, "fit_open_set": openset_scores,
              "recommended_score": openset_scores, "load_or_fit_open_set": openset,
              "save_open_set": openset, "heldout_clips": openset,
              "protocol_table": openset_eval, "open_set_block": openset_eval,
              "cluster_table": openset_eval, "open_set_metrics": metrics}
    for name, mod in owners.items():
        assert getattr(mod, name).__module__ == mod.__name__, name
    for name in ("openset", "openset_scores", "openset_eval"):
        mod = importlib.import_module(f"amdd_kit.{name}")
        for public in mod.__all__:
            obj = getattr(mod, public)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert obj.__module__ == mod.__name__, f"{name} re-exports {public}"
        assert not hasattr(mod, "open_set_metrics") or name == "openset_eval"
    assert not hasattr(openset_scores.OpenSet, "save")    # keeping it is amdd_kit.openset's job

"""How well an open set rejects: the protocol tables, the ``open_set`` block of ``metrics.json``,
and the cluster geometry behind the centroid score.

Each protocol puts known clips (test clips of a known class) against unknown clips and reports,
per rejection score (:data:`amdd_kit.openset_scores.SCORES`), the metrics of
:func:`amdd_kit.metrics.open_set_metrics`:

* ``auroc`` -- unknown = positive: the probability that a random unknown clip scores higher than
  a random known one (0.5 = no skill);
* ``fpr_at_95tpr`` -- the share of unknown clips *accepted* when the threshold keeps 95 % of the
  known clips (known = positive, the OpenOOD convention; lower is better, no skill = 0.95);
* ``oscr`` -- open-set classification rate (Dhamija et al. 2018): the area under the curve of
  "known clips accepted *and* attributed right" against "unknown clips accepted"; at most the
  closed-set accuracy, about half of it without skill;
* ``open_set_accuracy`` -- at the validation threshold: (known clips accepted and attributed
  right + unknown clips rejected) / all clips; with ``known_kept`` and ``unknown_rejected``.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .config import METHODS
from .jsonio import jsonable
from .metrics import open_set_metrics, unknown_mask
from .openset_scores import BASELINE, SCORES, OpenSet, normalise_rows, table_arrays

log = logging.getLogger(__name__)

__all__ = ["protocol_table", "class_removal_table", "open_set_block", "cluster_table",
           "centroid_report"]


# -- the protocols ------------------------------------------------------------------------------
def protocol_table(os_: OpenSet, known: pd.DataFrame, unknown: pd.DataFrame,
                   scores: Sequence[str] = SCORES) -> pd.DataFrame:
    """One row per score: :func:`~amdd_kit.metrics.open_set_metrics` of ``known`` clips (rows of a
    known class) against ``unknown`` clips, at the fitted thresholds. Index = score name."""
    known = known[known["method_idx"].astype(int).isin(os_.classes)]
    both = pd.concat([known, unknown], ignore_index=True)
    sc = os_.scores(both)
    mask = unknown_mask(len(known), len(unknown))
    pred = os_.predict_arrays(table_arrays(both)[0]) if len(both) else np.zeros(0, int)
    label = both["method_idx"].astype(int).to_numpy()
    rows = {s: open_set_metrics(sc[s], mask, pred, label, os_.thresholds[s], os_.tpr)
            for s in scores}
    return pd.DataFrame(rows).T.rename_axis("score")


def class_removal_table(os_: OpenSet, test: pd.DataFrame,
                        classes: Sequence[str] | None = None) -> pd.DataFrame:
    """The cheap stand-in for leave-one-generator-out: no retraining.

    For each fake class ``c`` (default: every known class but ``real``) the class is dropped
    from the open set (:meth:`OpenSet.without`) and its test clips are scored as unknown against
    the other test clips. Optimistic: the embedding and the head *did* learn ``c``; only the
    bank, the centroids, the logit and the thresholds forget it. Rows ``(held_out, score)``.
    """
    classes = list(classes) if classes is not None else \
        [c for c in os_.class_names if c != "real"]
    test = test[test["method_idx"].astype(int) >= 0]
    frames = {}
    for name in classes:
        c = METHODS.index(name)
        held = test[test["method_idx"].astype(int) == c]
        if len(held) == 0:
            log.warning("class_removal_table: no test clips of %s", name)
            continue
        frames[name] = protocol_table(os_.without(c), test[test["method_idx"] != c], held)
    return pd.concat(frames, names=["held_out"]) if frames else pd.DataFrame()


def open_set_block(os_: OpenSet, known: pd.DataFrame,
                   cross: Mapping[str, pd.DataFrame] | None = None,
                   unseen: Mapping[str, pd.DataFrame] | None = None,
                   cross_known: Mapping[str, pd.DataFrame] | None = None) -> dict[str, Any]:
    """The ``open_set`` block of ``metrics.json``.

    The fitted open set's summary, then per protocol and set of unknown clips, every score's
    metrics against the ``known`` test clips (``scores``, :func:`protocol_table`) with the
    recommended score's AUROC and the baseline's repeated on top:

    * ``cross_dataset`` -- ``cross``: ``{set name: its fake clips}`` (generators unseen by
      construction); ``cross_known``: the same sets' clips of a known class (their reals): the
      share each score rejects (``known_elsewhere_rejected``), near ``1 - tpr`` when the score
      reacts to the generator and not to the dataset;
    * ``unseen_generators`` -- ``unseen``: ``{method: its clips}`` for methods held out of
      training (``train.holdout_methods``).
    """
    def entry(unk: pd.DataFrame, extra: pd.DataFrame | None) -> dict[str, Any]:
        t = protocol_table(os_, known, unk)
        e: dict[str, Any] = {
            "n_known": int(t["n_known"].iloc[0]), "n_unknown": int(len(unk)),
            "auroc": float(t.loc[os_.recommended, "auroc"]),
            "auroc_baseline": float(t.loc[BASELINE, "auroc"]),
            "scores": {s: {k: v for k, v in r.items() if k not in ("n_known", "n_unknown")}
                       for s, r in t.to_dict("index").items()}}
        if extra is not None and len(extra):
            sc = os_.scores(extra)
            e["known_elsewhere_rejected"] = {
                "n": int(len(extra)),
                **{s: float((sc[s] > os_.thresholds[s]).mean()) for s in SCORES}}
        return e

    block: dict[str, Any] = os_.summary()
    for key, sets in (("cross_dataset", cross), ("unseen_generators", unseen)):
        if sets:
            block[key] = {name: entry(unk, (cross_known or {}).get(name) if key ==
                                      "cross_dataset" else None)
                          for name, unk in sets.items() if len(unk)}
    return jsonable(block)


# -- the geometry behind the centroid score -----------------------------------------------------
def cluster_table(os_: OpenSet) -> pd.DataFrame:
    """The geometry the centroid score rests on, per known class: ``radius`` (95th percentile
    of its training clips' distance to their own centroid), ``gap`` (distance to the nearest other
    centroid) and ``radius / gap``. Eq. 5 pulls the radius down and pushes the gap up to at least
    the loss's margin; the smaller ``radius / gap``, the emptier the space between the clusters,
    where a clip of an unknown generator can be noticed."""
    from sklearn.metrics.pairwise import euclidean_distances

    C = os_.centroids
    gaps = euclidean_distances(C, C)
    np.fill_diagonal(gaps, np.inf)
    rows = {}
    for i, c in enumerate(os_.classes):
        own = os_.train_emb[os_.train_labels == c]
        radius = float(np.quantile(np.linalg.norm(own - C[i], axis=1), 0.95))
        rows[METHODS[c]] = {"radius": radius, "gap": float(gaps[i].min()),
                            "radius_over_gap": radius / float(gaps[i].min())}
    return pd.DataFrame(rows).T.rename_axis("class")


def centroid_report(os_: OpenSet, groups: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Where groups of clips land relative to the clusters, one row per group: ``n``,
    ``median_distance`` to the nearest centroid, ``rejected`` (share beyond the centroid
    threshold), ``inside_a_cluster`` (share within the 95 % radius of its nearest class, see
    :func:`cluster_table`: clips no centroid rule can reject) and ``nearest_class`` (the class
    whose centroid most of them are nearest to)."""
    from sklearn.metrics.pairwise import euclidean_distances

    radius = cluster_table(os_)["radius"].to_numpy()
    rows = {}
    for name, df in groups.items():
        if len(df) == 0:
            continue
        d = euclidean_distances(normalise_rows(table_arrays(df)[1]), os_.centroids)
        near, dist = d.argmin(axis=1), d.min(axis=1)
        rows[name] = {"n": int(len(df)), "median_distance": float(np.median(dist)),
                      "rejected": float((dist > os_.thresholds["centroid"]).mean()),
                      "inside_a_cluster": float((dist <= radius[near]).mean()),
                      "nearest_class": METHODS[os_.classes[int(np.bincount(near).argmax())]]}
    return pd.DataFrame(rows).T.rename_axis("clips")

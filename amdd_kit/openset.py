"""Open-set attribution: answer "none of the generators I know" instead of naming the closest one.

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

The detectors (``MaxSoftmax``, ``EnergyBased``, ``KNN``) and the metrics (AUROC, FPR at a TPR,
OSCR) come from ``pytorch-ood``; the centroid distance is scikit-learn's ``euclidean_distances``
to the centroids of :func:`amdd_kit.geometry.class_centroids`.

The threshold of each score keeps ``tpr`` (95 %) of the **validation clips of known generators**:
no unknown clip is used to choose it. The kit recommends one score by a rule fixed before any
measurement (:func:`recommended_score`): ``centroid`` when the run was trained with the centroid
loss (its objective shapes that distance), else ``knn``. Maximum softmax is always reported
beside it.

Metrics of one protocol (known clips vs unknown clips, :func:`open_set_metrics`):

* ``auroc`` -- unknown = positive: the probability that a random unknown clip scores higher than
  a random known one (0.5 = no skill);
* ``fpr_at_95tpr`` -- the share of unknown clips *accepted* when the threshold keeps 95 % of the
  known clips (known = positive, the OpenOOD convention; lower is better, no skill = 0.95);
* ``oscr`` -- open-set classification rate (Dhamija et al. 2018): the area under the curve of
  "known clips accepted *and* attributed right" against "unknown clips accepted"; at most the
  closed-set accuracy, about half of it without skill;
* ``open_set_accuracy`` -- at the validation threshold: (known clips accepted and attributed
  right + unknown clips rejected) / all clips; with ``known_kept`` and ``unknown_rejected``.

Where it is kept: ``RUN/open_set.json`` (classes, thresholds, recommendation, fingerprint of
``model.pth``) and ``RUN/open_set_bank.npz`` (the normalised training embeddings with their class,
the validation clips' embeddings and logits; at most ``max_bank`` clips each), written by
:meth:`OpenSet.save`, read by :func:`load_open_set`.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .config import METHODS
from .geometry import class_centroids, stack_column
from .jsonio import jsonable

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
OPEN_SET_JSON, OPEN_SET_BANK = "open_set.json", "open_set_bank.npz"
#: the column added for the explorer (the recommended score, higher = more likely unknown)
REJECT_COLUMN = "reject_score"

__all__ = ["SCORES", "BASELINE", "SCORE_LABELS", "REJECT_COLUMN", "OpenSet", "fit_open_set",
           "load_open_set", "load_or_fit_open_set", "fit_tables", "recommended_score",
           "open_set_metrics", "protocol_table", "class_removal_table", "open_set_block",
           "unknown_mask", "heldout_clips", "cluster_table", "centroid_report"]


# -- the scores ---------------------------------------------------------------------------------
def _torch():
    import torch  # the detectors take tensors
    return torch


def _unit(X: np.ndarray) -> np.ndarray:
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
        self.train_emb = _unit(self.train_emb).astype(np.float32)
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
        u = _unit(emb)
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
        logits, emb = _arrays(df)
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
        pred = [METHODS[i] for i in self.predict_arrays(_arrays(df)[0])]
        out["open_pred_method"] = np.where(out["is_unknown"], "unknown", pred)
        return out

    def without(self, cls: int) -> "OpenSet":
        """The same attributor with class ``cls`` removed from the known classes (its training
        and validation clips dropped, its logit ignored, thresholds set again): the cheap stand-in
        for leave-one-generator-out (:func:`class_removal_table`)."""
        keep_t, keep_v = self.train_labels != cls, self.valid_labels != cls
        return OpenSet([c for c in self.classes if c != cls], self.train_emb[keep_t],
                       self.train_labels[keep_t], self.valid_emb[keep_v],
                       self.valid_logits[keep_v], self.valid_labels[keep_v], k=self.k,
                       tpr=self.tpr, recommended=self.recommended, model_sha1=self.model_sha1)

    # -- saving -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What ``open_set.json`` holds (and the ``open_set`` block of ``metrics.json`` starts
        with)."""
        return {"recommended": self.recommended, "threshold": self.threshold,
                "thresholds": dict(self.thresholds), "tpr": self.tpr, "k": self.k,
                "classes": self.class_names, "n_train": int(len(self.train_emb)),
                "n_valid": int(len(self.valid_emb)), "model_sha1": self.model_sha1,
                "orientation": "higher = more likely an unknown generator",
                "rule": "centroid if trained with the centroid loss (Eq. 5), else knn; "
                        "thresholds keep tpr of the validation clips of known generators"}

    def save(self, run_dir: str | Path) -> Path:
        """Write ``RUN/open_set.json`` and ``RUN/open_set_bank.npz``; returns the json path."""
        run_dir = Path(run_dir)
        np.savez_compressed(run_dir / OPEN_SET_BANK, train_emb=self.train_emb,
                            train_labels=self.train_labels, valid_emb=self.valid_emb,
                            valid_logits=self.valid_logits, valid_labels=self.valid_labels)
        path = run_dir / OPEN_SET_JSON
        path.write_text(json.dumps(jsonable(self.summary()), indent=2) + "\n")
        return path


def _arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
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


def fit_open_set(train: pd.DataFrame | str | Path, valid: pd.DataFrame | None = None, *,
                 k: int = 5, tpr: float = 0.95, recommended: str | None = None,
                 max_bank: int = 10_000, store=None, run=None) -> OpenSet:
    """Fit the open-set attributor.

    ``train``, ``valid``: embeddings tables (``embed_store`` rows with ``attr_logits``,
    ``embedding``, ``method_idx``) of the training split (the bank and the centroids) and of the
    validation split (the thresholds); clips of no known class (``method_idx < 0``) are ignored.
    Or ``train`` is a run dir: its train and validation clips are embedded first
    (:func:`fit_tables`; ``store`` and ``run`` as there) and the recommendation follows the run's
    config (:func:`recommended_score`). ``max_bank`` caps the clips kept of each table.
    """
    sha = ""
    if isinstance(train, (str, Path)):
        run_dir = Path(train)
        train, valid, cfg = fit_tables(run_dir, store=store, run=run)
        recommended = recommended or recommended_score(cfg)
        sha = model_fingerprint(run_dir)
    if valid is None:
        raise ValueError("fit_open_set needs the validation table too (the thresholds)")
    train, valid = _known_rows(train), _known_rows(valid)
    if len(train) == 0:
        raise ValueError("no training clips of a known class to fit the open set on")
    classes = sorted(set(train["method_idx"].astype(int)))
    train, valid = _subsample(train, max_bank), _subsample(valid, max_bank)
    valid = valid[valid["method_idx"].astype(int).isin(classes)]
    t_logits, t_emb = _arrays(train)
    v_logits, v_emb = _arrays(valid)
    return OpenSet(classes, t_emb, train["method_idx"].to_numpy(), v_emb, v_logits,
                   valid["method_idx"].to_numpy(), k=k, tpr=tpr,
                   recommended=recommended or recommended_score(None), model_sha1=sha)


def fit_tables(run_dir: str | Path, store=None, run=None, batch_size: int = 32
               ) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """Embed a run's training and validation clips -> ``(train_df, valid_df, cfg)``.

    ``store``: the training store (path or opened; default ``RUN/store.txt``); ``run``: the
    run's ``(cfg, model)`` when already loaded.
    """
    from .data.store import ClipStore
    from .evaluate import read_split  # evaluate builds on this module's metrics: import late
    from .inference import embed_store, load_run

    run_dir = Path(run_dir)
    if store is None:
        rec = run_dir / "store.txt"
        if not rec.exists():
            raise FileNotFoundError(f"{rec} does not say which store {run_dir} was trained on: "
                                    f"pass the store (`store=`)")
        store = rec.read_text().strip()
    if isinstance(store, (str, Path)):
        if not (Path(store) / "manifest.parquet").exists():
            raise FileNotFoundError(f"the training store {store} is not there: preprocess it "
                                    f"(notebook 01 or `amdd-kit preprocess`) or pass `store=`")
        store = ClipStore(store)
    cfg, model = run if run is not None else load_run(run_dir)
    split = read_split(run_dir, store, cfg)
    idx = np.flatnonzero(np.isin(split, ["train", "valid"]))
    df = embed_store(model, store, cfg, indices=idx, batch_size=batch_size, split=split)
    return (df[df["split"] == "train"].reset_index(drop=True),
            df[df["split"] == "valid"].reset_index(drop=True), cfg)


def model_fingerprint(run_dir: str | Path) -> str:
    """SHA-1 of ``RUN/model.pth`` ("" when missing): a saved open set belongs to these weights."""
    path = Path(run_dir) / "model.pth"
    if not path.exists():
        return ""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_open_set(run_dir: str | Path) -> OpenSet:
    """The open set saved beside a run (:meth:`OpenSet.save`)."""
    run_dir = Path(run_dir)
    meta_path, bank_path = run_dir / OPEN_SET_JSON, run_dir / OPEN_SET_BANK
    for p in (meta_path, bank_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: fit the open set first (`amdd-kit evaluate "
                                    f"--run {run_dir}`, notebook 04, or "
                                    f"`amdd_kit.openset.load_or_fit_open_set`)")
    meta = json.loads(meta_path.read_text())
    with np.load(bank_path) as b:
        arrays = {k: b[k] for k in b.files}
    return OpenSet([METHODS.index(c) for c in meta["classes"]], arrays["train_emb"],
                   arrays["train_labels"], arrays["valid_emb"], arrays["valid_logits"],
                   arrays["valid_labels"], k=int(meta["k"]), tpr=float(meta["tpr"]),
                   recommended=meta["recommended"], model_sha1=meta.get("model_sha1", ""))


def load_or_fit_open_set(run_dir: str | Path, store=None, run=None, save: bool = True
                         ) -> OpenSet:
    """The run's saved open set when it belongs to the run's current ``model.pth``; otherwise
    fit it (:func:`fit_open_set`) and, with ``save``, write it beside the run (logged)."""
    run_dir = Path(run_dir)
    if (run_dir / OPEN_SET_JSON).exists() and (run_dir / OPEN_SET_BANK).exists():
        os_ = load_open_set(run_dir)
        if os_.model_sha1 == model_fingerprint(run_dir):
            return os_
        log.info("%s belongs to other weights: fitting the open set again", run_dir / OPEN_SET_JSON)
    os_ = fit_open_set(run_dir, store=store, run=run)
    if save:
        try:
            log.info("open set fitted and saved: %s", os_.save(run_dir))
        except OSError as e:  # a read-only run folder: use it without keeping it
            log.warning("open set fitted but not saved in %s: %s", run_dir, e)
    return os_


def heldout_clips(run_dir: str | Path, store=None, run=None) -> pd.DataFrame:
    """The held-out sets' clips as scored by the run, column ``eval_set``: the
    ``embeddings_cross.parquet`` that ``evaluate`` / notebook 04 wrote when it holds the logits;
    otherwise the stores beside the training store (``store``, default ``RUN/store.txt``;
    :func:`amdd_kit.evaluate.find_cross_stores`) are embedded now. Empty when there are none."""
    from .data.store import ClipStore
    from .evaluate import find_cross_stores  # evaluate builds on this module: import late
    from .inference import embed_store, load_run

    run_dir = Path(run_dir)
    path = run_dir / "embeddings_cross.parquet"
    if path.exists():
        df = pd.read_parquet(path)
        if "attr_logits" in df.columns:
            return df
    if store is None:
        rec = run_dir / "store.txt"
        store = rec.read_text().strip() if rec.exists() else None
    found = find_cross_stores(getattr(store, "path", store)) if store is not None else {}
    if not found:
        return pd.DataFrame()
    cfg, model = run if run is not None else load_run(run_dir)
    frames = [embed_store(model, ClipStore(p), cfg).assign(eval_set=name)
              for name, p in found.items()]
    return pd.concat(frames, ignore_index=True)


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
        d = euclidean_distances(_unit(_arrays(df)[1]), os_.centroids)
        near, dist = d.argmin(axis=1), d.min(axis=1)
        rows[name] = {"n": int(len(df)), "median_distance": float(np.median(dist)),
                      "rejected": float((dist > os_.thresholds["centroid"]).mean()),
                      "inside_a_cluster": float((dist <= radius[near]).mean()),
                      "nearest_class": METHODS[os_.classes[int(np.bincount(near).argmax())]]}
    return pd.DataFrame(rows).T.rename_axis("clips")


# -- metrics ------------------------------------------------------------------------------------
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

    torch = _torch()
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
        out["closed_set_accuracy"] = float((pr == lab)[~unknown].mean()) if (~unknown).any() \
            else nan
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


def protocol_table(os_: OpenSet, known: pd.DataFrame, unknown: pd.DataFrame,
                   scores: Sequence[str] = SCORES) -> pd.DataFrame:
    """One row per score: :func:`open_set_metrics` of ``known`` clips (rows of a known class)
    against ``unknown`` clips, at the fitted thresholds. Index = score name."""
    known = known[known["method_idx"].astype(int).isin(os_.classes)]
    both = pd.concat([known, unknown], ignore_index=True)
    sc = os_.scores(both)
    mask = unknown_mask(len(known), len(unknown))
    pred = os_.predict_arrays(_arrays(both)[0]) if len(both) else np.zeros(0, int)
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

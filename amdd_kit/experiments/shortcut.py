"""The shortcut audit: is the detector learning the forgery, or something that merely comes with it?

FakeAVCeleb's fake audio tracks start with a short silence that real ones lack. A "detector" that
only measures the length of that leading silence separates real from fake without looking at a
single face or formant. A deep model can learn the same shortcut, score very well on the
benchmark, and fail on any video that was not made the same way.

:func:`shortcut_audit` reproduces this with the synthetic corpus:

1. it renders the corpus a second time with the shortcut switched on
   (``make_corpus(..., shortcut="leading-silence")``, in ``data_dir/shortcut``); the clean corpus
   is ``data_dir`` itself (written by notebook 01);
2. the **trivial detector** (:class:`LeadingSilenceDetector`, one threshold on the
   leading-silence length that :func:`leading_silence_table` measures) is fitted
   on the train identities and scored on the others, on both corpora: near-perfect on the
   shortcut corpus, near chance on the clean one;
3. **AMDD** is trained on the shortcut corpus and scored on its test identities three ways:
   as preprocessed for training (``shortcut``), with the leading silence trimmed away before the
   clip windows are cut (``shortcut_trimmed``, ``cfg.data.trim_silence``, a second store with
   ``suffix="trim"``) and on the same identities' clips of the clean corpus (``clean``).

A model that relies on the silence loses accuracy once the silence is gone. The lesson: a detector
that cannot say *how* a video was forged may be learning the wrong signal; attribution, and checks
like this one, make the evidence visible.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..config import Config
from ..jsonio import jsonable as _jsonable
from ..viz import audit_bars
from .runs import train_or_reuse

log = logging.getLogger(__name__)

DATASET = "fakeavceleb"
AUDIT_FILE = "shortcut_audit.json"
SILENCE_FILE = "shortcut_silence.csv"

__all__ = ["shortcut_audit", "corpus_settings", "leading_silence_table", "silence_table",
           "detector_scores", "LeadingSilenceDetector", "ensure_store", "audit_findings",
           "audit_scores", "audit_figure"]


# -- corpora and stores -------------------------------------------------------------------------
def corpus_settings(data_dir: str | Path) -> dict[str, Any]:
    """``size`` and ``seed`` of the clean corpus in ``data_dir`` (from ``.complete.json``),
    so the shortcut corpus is rendered from the same identities; defaults ``tiny`` / 0."""
    marker = Path(data_dir) / ".complete.json"
    info: dict[str, Any] = {}
    if marker.exists():
        try:
            info = json.loads(marker.read_text())
        except json.JSONDecodeError as e:
            log.warning("%s unreadable (%s): using the default corpus settings", marker, e)
    return {"size": info.get("size", "tiny"), "seed": int(info.get("seed", 0) or 0),
            "n_identities": info.get("n_identities")}


def _ensure_corpus(out_dir: Path, settings: dict[str, Any], shortcut: str | None, workers: int,
                   progress: bool) -> Path:
    """The FakeAVCeleb-layout root of a synthetic corpus, rendered when missing.

    The shortcut corpus only needs the FakeAVCeleb layout (the held-out sets carry no shortcut);
    a missing clean corpus is rendered whole, as notebook 01 would.
    """
    from ..data.synthetic import LAYOUTS, make_corpus

    root = out_dir / DATASET
    if not (out_dir / ".complete.json").exists():
        log.info("rendering the %s corpus in %s", shortcut or "clean", out_dir)
        roots = make_corpus(out_dir, size=settings["size"], seed=settings["seed"],
                            shortcut=shortcut, workers=workers, progress=progress,
                            n_identities=settings.get("n_identities"),
                            layouts=(DATASET,) if shortcut else LAYOUTS)
        root = Path(roots.get(DATASET, root))
    return root


def ensure_store(root: str | Path, store_path: str | Path, cfg: Config, workers: int = 1,
                 progress: bool = False):
    """Open the clip store at ``store_path``, preprocessing ``root`` into it first when needed.

    Preprocessing is resumable and refuses a folder built with another ``DataConfig``.
    """
    from ..data.preprocess import preprocess_dataset
    from ..data.store import ClipStore

    store_path = Path(store_path)
    if not (store_path / "manifest.parquet").exists():
        log.info("preprocessing %s -> %s", root, store_path)
        preprocess_dataset(DATASET, root, store_path, cfg.data, workers=workers,
                           progress=progress)
    return ClipStore(store_path)


# -- the trivial detector -----------------------------------------------------------------------
@dataclass
class LeadingSilenceDetector:
    """The shortcut as a detector: call a video fake when its leading silence exceeds a threshold.

    ``fit`` picks the threshold that maximises balanced accuracy on the training videos (the
    ROC point of maximal Youden J, ``sklearn.metrics.roc_curve``); if that
    alone separates real from fake on the test set, the dataset carries a shortcut that a deep
    model can learn instead of forensic evidence.
    """

    threshold: float = float("nan")
    train_accuracy: float = float("nan")

    def fit(self, silence_s: Sequence[float], labels: Sequence[int]) -> "LeadingSilenceDetector":
        """Choose the threshold (seconds) from leading silences and labels (1 = fake)."""
        s, y = np.asarray(silence_s, float), np.asarray(labels, int)
        if len(s) != len(y) or len(s) == 0:
            raise ValueError("fit needs equally many silences and labels (at least one)")
        if len(np.unique(y)) < 2:  # one class only: call everything that class
            self.threshold = float(s.min() - 1e-3) if y[0] == 1 else float(s.max() + 1e-3)
        else:
            from sklearn.metrics import roc_curve

            # max Youden J = tpr - fpr is max balanced accuracy; roc_curve's rule is s >= t,
            # ours s > threshold: put the threshold half-way down to the next smaller silence
            fpr, tpr, thr = roc_curve(y, s)
            t = thr[int(np.argmax(tpr - fpr))]
            below = s[s < t]
            self.threshold = float((t + below.max()) / 2) if below.size else float(t - 1e-3)
        self.train_accuracy = self.score(s, y)
        return self

    def predict(self, silence_s: Sequence[float]) -> np.ndarray:
        """1 (fake) where the leading silence exceeds the threshold, else 0."""
        if np.isnan(self.threshold):
            raise RuntimeError("call fit() first")
        return (np.asarray(silence_s, float) > self.threshold).astype(int)

    def score(self, silence_s: Sequence[float], labels: Sequence[int]) -> float:
        """Accuracy (fraction in 0..1) of :meth:`predict` against ``labels``."""
        return float((self.predict(silence_s) == np.asarray(labels, int)).mean())

    def balanced_score(self, silence_s: Sequence[float], labels: Sequence[int]) -> float:
        """Balanced accuracy (mean of real and fake recall; NaN unless both classes are present):
        :func:`amdd_kit.metrics.balanced_accuracy` of :meth:`predict`."""
        from ..metrics import balanced_accuracy

        return balanced_accuracy(labels, self.predict(silence_s))


def leading_silence_table(root: str | Path, manifest: pd.DataFrame, threshold_db: float = -40.0
                          ) -> pd.DataFrame:
    """The manifest's ``path, method, label`` (and ``identity``) once per video (path relative
    to ``root``) plus ``leading_silence_s`` (:func:`amdd_kit.traces.leading_silence_seconds` of
    :func:`amdd_kit.data.audio.native_audio`; NaN where the audio cannot be read) and ``error``
    (why; a file that fails is recorded, not fatal)."""
    from ..data.audio import native_audio
    from ..traces import leading_silence_seconds

    cols = [c for c in ("path", "audio_path", "identity", "method", "label") if c in manifest]
    videos = manifest[cols].drop_duplicates("path").reset_index(drop=True)
    rows = []
    for _, r in videos.iterrows():
        try:
            wave, sr = native_audio(Path(root) / (r.get("audio_path") or r["path"]))
            rows.append((leading_silence_seconds(wave, sr, threshold_db), ""))
        except (ValueError, OSError) as e:
            rows.append((float("nan"), str(e)))
    return videos.join(pd.DataFrame(rows, columns=["leading_silence_s", "error"],
                                    index=videos.index))


def silence_table(root: str | Path, cfg: Config) -> pd.DataFrame:
    """One row per source video of a FakeAVCeleb-layout corpus with its leading silence.

    Columns: ``path``, ``identity``, ``method``, ``label``, ``leading_silence_s`` (NaN when the
    audio cannot be read; recorded in ``error``) and ``split`` (the identity split of
    ``cfg.train``, the same call the trainer makes). Silence is measured with the threshold
    ``cfg.data.silence_db`` that ``trim_silence`` uses.
    """
    from ..data.adapters import read_dataset
    from ..data.splits import identity_split

    res = read_dataset(DATASET, root)
    t = leading_silence_table(res.root, res.manifest, cfg.data.silence_db)
    t["split"] = np.asarray(identity_split(t, cfg.train.valid_frac, cfg.train.test_frac,
                                           cfg.train.split_seed))
    return t


def detector_scores(table: pd.DataFrame) -> dict[str, Any]:
    """Fit the leading-silence detector on the ``train`` rows, score all the other rows.

    ``table`` needs ``leading_silence_s``, ``label`` (0/1) and ``split``. Returns ``threshold``
    (seconds; longer silence -> fake), ``direction``, ``accuracy``, ``balanced_accuracy``,
    ``real_recall``, ``fake_recall``, ``auc`` (of the silence length as a score), ``n_fit``,
    ``n_scored``. Rows with an unknown silence length are left out (counted in ``n_unreadable``).
    """
    from ..metrics import binary_metrics

    ok = table["leading_silence_s"].notna()
    fit, score = table[ok & (table["split"] == "train")], table[ok & (table["split"] != "train")]
    if fit["label"].nunique() < 2 or len(score) == 0:
        raise ValueError("detector_scores: the train identities need reals and fakes, and at "
                         "least one other identity must be left to score")
    det = LeadingSilenceDetector()
    det.fit(fit["leading_silence_s"].to_numpy(), fit["label"].to_numpy().astype(int))
    x = score["leading_silence_s"].to_numpy()
    p = np.asarray(det.predict(x), dtype=float)   # 1 = fake
    if p.ndim == 2:                                # (n, 2) probabilities -> p(fake)
        p = p[:, -1]
    label = score["label"].to_numpy().astype(int)
    b = binary_metrics(label, p)
    b["auc"] = binary_metrics(label, x)["auc"]     # the silence length itself as the score
    threshold = getattr(det, "threshold_", getattr(det, "threshold", float("nan")))
    return {
        "threshold": float(threshold), "direction": "longer silence = fake",
        "accuracy": float(((p >= 0.5).astype(int) == label).mean()),
        "balanced_accuracy": b["balanced_accuracy"], "real_recall": b["real_recall"],
        "fake_recall": b["fake_recall"], "auc": b["auc"],
        "n_fit": int(len(fit)), "n_scored": int(len(score)), "n_unreadable": int((~ok).sum()),
    }


# -- AMDD on the shortcut corpus ----------------------------------------------------------------
def _scores(df: pd.DataFrame) -> dict[str, Any]:
    from ..metrics import summarise

    if len(df) == 0:
        return {"n": 0, "error": "no clips of the test identities in this store"}
    s = summarise(df)
    return {k: s[k] for k in ("balanced_accuracy", "auc", "real_recall", "fake_recall",
                              "attribution_accuracy")} | {"n": int(len(df))}


def _embed_identities(model, store, cfg: Config, identities: set[str]) -> pd.DataFrame:
    """Predictions for the clips of ``store`` whose identity is in ``identities``."""
    from ..inference import embed_store

    idx = np.flatnonzero(store.manifest["identity"].astype(str).isin(identities).to_numpy())
    return embed_store(model, store, cfg, indices=idx)


# -- the audit ----------------------------------------------------------------------------------
def shortcut_audit(data_dir: str | Path, cfg: Config, out_dir: str | Path, workers: int = 1,
                   epochs: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the leading-silence shortcut audit; write ``out_dir/shortcut_audit.json``.

    Args:
        data_dir: the clean corpus (``data_dir/fakeavceleb``, its store under
            ``data_dir/stores``); the shortcut corpus is made in ``data_dir/shortcut``.
        cfg: the config for preprocessing and training (its ``name`` names the stores).
        out_dir: receives ``shortcut_audit.json``, ``shortcut_silence.csv`` (the per-video
            leading silences of both corpora) and the model run in ``shortcut_model/``.
        workers: processes for rendering and preprocessing.
        epochs: training epochs (``None``: ``cfg.train.epochs``).
        progress: show progress bars.

    Returns:
        ``{"corpus": ..., "detector": {"shortcut": ..., "clean": ...},
        "amdd": {"shortcut": ..., "shortcut_trimmed": ..., "clean": ...}, "silence": ...}``.
        A part that fails is recorded as ``{"error": ...}`` (and logged); the rest still runs.
    """
    from ..data.store import store_dir
    from ..inference import load_run

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if epochs:
        cfg = cfg.override({"train.epochs": int(epochs)})
    settings = corpus_settings(data_dir)
    sc_dir = data_dir / "shortcut"
    result: dict[str, Any] = {"corpus": {**settings, "clean": str(data_dir),
                                         "shortcut": str(sc_dir)},
                              "config": cfg.name, "epochs": cfg.train.epochs}
    roots = {
        "shortcut": _ensure_corpus(sc_dir, settings, "leading-silence", workers, progress),
        "clean": _ensure_corpus(data_dir, settings, None, workers, progress),
    }

    # 1. the trivial detector, on both corpora
    tables, result["detector"], result["silence"] = [], {}, {}
    for name, root in roots.items():
        try:
            t = silence_table(root, cfg)
            tables.append(t.assign(corpus=name))
            result["detector"][name] = detector_scores(t)
            result["silence"][name] = {
                "mean_real_s": float(t.loc[t["label"] == 0, "leading_silence_s"].mean()),
                "mean_fake_s": float(t.loc[t["label"] == 1, "leading_silence_s"].mean())}
        except Exception as e:
            log.exception("shortcut audit: trivial detector on the %s corpus failed", name)
            result["detector"][name] = {"error": f"{type(e).__name__}: {e}"}
    if tables:
        pd.concat(tables, ignore_index=True).to_csv(out_dir / SILENCE_FILE, index=False)

    # 2. AMDD trained on the shortcut corpus, scored three ways on its test identities
    result["amdd"] = {}
    try:
        sc_store = ensure_store(roots["shortcut"], store_dir(sc_dir, DATASET, cfg.name), cfg,
                                workers, progress)
        run_dir = out_dir / "shortcut_model"
        train_or_reuse(sc_store, cfg, run_dir, progress)
        result["run_dir"] = str(run_dir)
        test_df = pd.read_parquet(run_dir / "embeddings.parquet")
        test_ids = set(test_df["identity"].astype(str))
        result["amdd"]["shortcut"] = _scores(test_df)
        _, model = load_run(run_dir)
        trim_cfg = cfg.override({"data.trim_silence": True})
        evals = {
            "shortcut_trimmed": lambda: ensure_store(
                roots["shortcut"], store_dir(sc_dir, DATASET, cfg.name, suffix="trim"),
                trim_cfg, workers, progress),
            "clean": lambda: ensure_store(roots["clean"], store_dir(data_dir, DATASET, cfg.name),
                                          cfg, workers, progress),
        }
        for name, open_store in evals.items():
            try:
                result["amdd"][name] = _scores(_embed_identities(model, open_store(), cfg,
                                                                 test_ids))
            except Exception as e:
                log.exception("shortcut audit: scoring AMDD on %s failed", name)
                result["amdd"][name] = {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:
        log.exception("shortcut audit: training AMDD on the shortcut corpus failed")
        result["amdd"]["error"] = f"{type(e).__name__}: {e}"

    result["findings"] = audit_findings(result)
    (out_dir / AUDIT_FILE).write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    return result


def _get(d: dict, *keys) -> float:
    for k in keys:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    try:
        return float(d)
    except (TypeError, ValueError):
        return float("nan")


def audit_findings(audit: dict[str, Any], tol: float = 0.1) -> list[str]:
    """Plain-language findings computed from an audit dict (no numbers are hard-coded).

    ``tol``: how far from chance (0.5 balanced accuracy) or how big a drop counts.
    """
    out = []
    sc = _get(audit, "detector", "shortcut", "balanced_accuracy")
    cl = _get(audit, "detector", "clean", "balanced_accuracy")
    if math.isfinite(sc):
        out.append(f"The leading-silence detector reaches {sc:.0%} balanced accuracy on the "
                   f"shortcut corpus: " + ("the silence alone gives the fakes away."
                                           if sc >= 0.5 + 2 * tol else
                                           "the silence does not give the fakes away here."))
    if math.isfinite(cl):
        out.append(f"On the clean corpus it reaches {cl:.0%}: " +
                   ("about chance, as it should be without the shortcut."
                    if abs(cl - 0.5) <= tol else "not chance: the clean corpus carries a "
                                                   "silence cue too, worth investigating."))
    a = _get(audit, "amdd", "shortcut", "balanced_accuracy")
    if math.isfinite(a) and a <= 0.5 + tol:
        out.append(f"AMDD trained on the shortcut corpus reaches only {a:.0%} balanced accuracy "
                   "on its own test identities: it learnt neither the forgery nor the silence, "
                   "so this run cannot tell whether it would lean on the shortcut (train longer).")
        return out
    for name, what in (("shortcut_trimmed", "once the leading silence is trimmed"),
                       ("clean", "on the clean corpus")):
        b = _get(audit, "amdd", name, "balanced_accuracy")
        if math.isfinite(a) and math.isfinite(b):
            verdict = ("it leaned on the silence" if a - b > tol else
                       "it did not depend on the silence" if abs(a - b) <= tol else
                       "it does better without the silence")
            out.append(f"AMDD trained on the shortcut corpus: {a:.0%} balanced accuracy on its "
                       f"own test identities, {b:.0%} {what}: {verdict}.")
    return out


# -- figures (built in amdd_kit.viz) ------------------------------------------------------------
def audit_scores(audit: dict[str, Any]) -> dict[str, float]:
    """Balanced accuracy of the trivial detector and of AMDD in each setting of the audit."""
    return {
        "silence detector<br>shortcut corpus": _get(audit, "detector", "shortcut",
                                                    "balanced_accuracy"),
        "silence detector<br>clean corpus": _get(audit, "detector", "clean", "balanced_accuracy"),
        "AMDD (trained on shortcut)<br>shortcut test": _get(audit, "amdd", "shortcut",
                                                            "balanced_accuracy"),
        "AMDD<br>silence trimmed": _get(audit, "amdd", "shortcut_trimmed", "balanced_accuracy"),
        "AMDD<br>clean corpus": _get(audit, "amdd", "clean", "balanced_accuracy"),
    }


def audit_figure(audit: dict[str, Any]):
    """Bar chart of :func:`audit_scores` (:func:`amdd_kit.viz.audit_bars`)."""
    return audit_bars(audit_scores(audit))

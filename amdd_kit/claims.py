"""What the ablation numbers say about the paper's claims: paired-bootstrap intervals and
verdicts that can come out either way.

Every check is "claimed-better minus other" over the bootstrap that
:func:`amdd_kit.experiments.ablation.run_ablations` writes (``ablations/bootstrap.json``:
training seeds and test identities resampled together, the same draws for every row):
``supported`` when the 95 % interval lies above 0, ``contradicted`` when below, ``cannot tell``
when it holds 0, ``not run`` when a row is missing or failed. Because the draws resample the
training seeds, a supported or contradicted verdict is one that a rerun with other seeds should
not overturn. Notebook 06 shows one group of claims per cell (:data:`CLAIM_GROUPS`).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd


def interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaN draws dropped; NaNs when none are left)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def difference(boot: Mapping[str, Mapping[str, Sequence[float]]], row_a: str, row_b: str | None,
               metric: str, baseline: str | float | None = None) -> tuple[float, float, float]:
    """Paired bootstrap of ``metric(row_a) - metric(row_b)`` (or minus a baseline metric of
    ``row_a`` / a constant): ``(mean, lo, hi)`` of the 95 % interval; NaNs when missing."""
    nan = (float("nan"),) * 3
    if row_a not in boot or metric not in boot[row_a]:
        return nan
    a = np.asarray(boot[row_a][metric], float)
    if row_b is not None:
        if row_b not in boot or metric not in boot[row_b]:
            return nan
        b = np.asarray(boot[row_b][metric], float)
    elif isinstance(baseline, str):
        b = np.asarray(boot[row_a][baseline], float)
    else:
        b = np.full_like(a, float(baseline))
    d = a - b
    lo, hi = interval(d)
    return (float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")), lo, hi


def verdict(lo: float, hi: float) -> str:
    """``supported`` when the interval of (claimed better - other) lies above 0,
    ``contradicted`` when it lies below 0, ``cannot tell`` when it holds 0 or is missing."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "cannot tell"
    return "supported" if lo > 0 else "contradicted" if hi < 0 else "cannot tell"


def claims_markdown(claims: pd.DataFrame) -> str:
    """The verdict lines of :func:`paper_claims` as Markdown bullets, for ``display(Markdown())``."""
    return "\n".join(f"- **{c.claim}** — paper: {c.paper}; ours: {c.ours}. "
                     f"**{c.verdict.upper()}**: {c.why}." for c in claims.itertuples())


#: The paper's claims in groups, one notebook cell each (:func:`paper_claims` ``group=``).
CLAIM_GROUPS: tuple[str, ...] = ("sanity", "embedding", "terms", "cmffc", "cad")


def paper_claims(table: pd.DataFrame, boot: Mapping[str, Mapping[str, Sequence[float]]],
                 group: str | None = None) -> pd.DataFrame:
    """Check the paper's claims against an ablation table and its identity bootstrap.

    ``group``: one of :data:`CLAIM_GROUPS` (``sanity``: better than chance / the majority;
    ``embedding``: attribution supervision shapes the embedding; ``terms``: each loss term
    helps; ``cmffc``: the fingerprints identify their own traces; ``cad``: AMDD against CAD),
    or ``None`` for all of them.

    Every check is "claimed-better minus other" with a 95 % paired bootstrap interval over the
    training seeds and the test identities
    (:func:`amdd_kit.experiments.row_scores.bootstrap_rows`): ``supported`` when the interval
    lies above 0, ``contradicted`` when below, ``cannot tell`` when it holds 0, ``not run`` when
    a row is missing or failed. Accuracies are compared with the baseline a model without the
    skill gets (0.5 for balanced accuracy, the majority class for attribution), never with 1/7.

    Returns a DataFrame with columns ``group``, ``claim``, ``paper``, ``ours``, ``verdict`` and
    ``why``.
    """
    if group is not None and group not in CLAIM_GROUPS:
        raise ValueError(f"unknown claim group {group!r}; choose from {CLAIM_GROUPS}")
    ok = set(table.index[table["status"].astype(str) == "ok"]) if "status" in table.columns \
        else set(table.index)
    boot = {r: v for r, v in boot.items() if r in ok}
    n_seeds = int(table["n_seeds"].max()) if "n_seeds" in table.columns and \
        table["n_seeds"].notna().any() else 1
    seeds = f"{n_seeds} training seeds and " if n_seeds > 1 else ""
    claims = []

    def check(grp: str, claim: str, paper: str, a: str, b: str | None, metric: str,
              baseline: str | float | None = None, what: str = ""):
        if group is not None and grp != group:
            return
        need = [a] + ([b] if b else [])
        missing = [r for r in need if r not in boot]
        if missing:
            claims.append({"group": grp, "claim": claim, "paper": paper, "ours": "-", "verdict": "not run",
                           "why": f"row(s) {missing} missing or failed"})
            return
        mean, lo, hi = difference(boot, a, b, metric, baseline)
        va = float(np.nanmean(boot[a][metric]))
        vb = float(np.nanmean(boot[b][metric])) if b else (
            float(np.nanmean(boot[a][baseline])) if isinstance(baseline, str) else float(baseline))
        other = b or ("majority baseline" if isinstance(baseline, str) else f"{baseline:g}")
        claims.append({
            "group": grp, "claim": claim, "paper": paper,
            "ours": f"{what or metric} {va:.3f} ({a}) vs {vb:.3f} ({other})",
            "verdict": verdict(lo, hi),
            "why": f"difference {mean:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}] over "
                   f"{seeds}test identities (paired bootstrap)"})

    check("sanity", "AMDD detects fakes better than chance (sanity check)", "99.7 %", "full", None,
          "balanced_accuracy", 0.5, "balanced accuracy")
    check("sanity", "AMDD attributes fakes to their generator (above the majority baseline)", "95.9 %",
          "full", None, "attribution_accuracy", "attribution_majority", "attribution accuracy")
    for other, label in (("detection_only", "with real/fake labels only"),
                         ("no_attribution", "without the attribution loss")):
        check("embedding", f"The shared embedding holds less generator information {label} "
              f"(linear probe)", "95.9 % -> 11.0 %", "full", other, "probe_accuracy",
              what="probe accuracy")
        check("embedding", f"Generator clusters are clearer with attribution supervision (vs {other})",
              "clearer clusters", "full", other, "silhouette", what="silhouette")
    for other, term in (("no_cmffc", "CMFFC (Eq. 4)"), ("no_contrastive", "contrastive (Eq. 3)"),
                        ("no_centroid", "centroid (Eq. 5)")):
        check("terms", f"The {term} term helps detection", "each term helps", "full", other,
              "balanced_accuracy", what="balanced accuracy")
        check("terms", f"The {term} term helps attribution", "each term helps", "full", other,
              "attribution_accuracy", what="attribution accuracy")
    for mod in ("visual", "audio"):
        check("cmffc", f"CMFFC makes the {mod} fingerprint identify its own trace (linear probe)",
              "consistent fingerprints", "full", "no_cmffc", f"trace_probe_{mod}",
              what=f"{mod} trace probe")
    check("cad", "AMDD outperforms CAD (detection)", "AMDD > CAD", "full", "cad", "balanced_accuracy",
          what="balanced accuracy")
    check("cad", "AMDD outperforms CAD (attribution)", "AMDD > CAD", "full", "cad",
          "attribution_accuracy", what="attribution accuracy")
    return pd.DataFrame(claims, columns=["group", "claim", "paper", "ours", "verdict", "why"])

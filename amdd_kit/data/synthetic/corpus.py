"""The corpus: render every planned video into its dataset folder (resumable, in parallel),
then the metadata files and a completion marker.
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from ... import __version__
from .generators import VideoSpec, render_video
from .media import _tmp, write_jpeg_dir, write_video, write_wav
from .plans import plan_dfdm, plan_dftimit, plan_fakeavceleb, plan_lavdf


log = logging.getLogger(__name__)


LAYOUTS: tuple[str, ...] = ("fakeavceleb", "lavdf", "dftimit", "dfdm")


SIZES: dict[str, dict[str, int]] = {
    # identities = training identities; the held-out counts scale with them
    # tiny frames are 72 px so that the ~50 px face fits a 64 px crop at native scale (no
    # resampling: the checkerboard and seam reach the model); standard 224 px fits the paper's
    # 224 px crop the same way (see data/faces.crop_scale)
    "tiny": {"identities": 24, "frame": 72, "lavdf_originals": 10, "dftimit_subjects": 4,
             "dfdm_reals": 5, "dfdm_per_model": 5},
    "standard": {"identities": 250, "frame": 224, "lavdf_originals": 100, "dftimit_subjects": 16,
                 "dfdm_reals": 20, "dfdm_per_model": 40},
}


SHORTCUTS = (None, "leading-silence")


def _counts(size: str, n_identities: int | None) -> dict[str, int]:
    base = dict(SIZES[size])
    if n_identities is not None:
        r = n_identities / base["identities"]
        base = {"identities": n_identities, "frame": base["frame"],
                "lavdf_originals": max(2, round(base["lavdf_originals"] * r)),
                "dftimit_subjects": max(1, round(base["dftimit_subjects"] * r)),
                "dfdm_reals": max(1, round(base["dfdm_reals"] * r)),
                "dfdm_per_model": max(1, round(base["dfdm_per_model"] * r))}
    return base


def make_video(spec: VideoSpec, out_dir: str | Path) -> str:
    """Render ``spec`` and write its file(s) under ``out_dir``; skip when already there."""
    out_dir = Path(out_dir)
    target = out_dir / spec.rel
    if target.exists() and (not spec.wav_rel or (out_dir / spec.wav_rel).exists()):
        return spec.rel
    frames, audio = render_video(spec)
    if spec.container == "mp4":
        write_video(target, frames, spec.fps, audio, spec.sr, crf=spec.crf)
    else:
        if spec.wav_rel:
            write_wav(out_dir / spec.wav_rel, audio, spec.sr)
        if spec.container == "avi":
            write_video(target, frames, spec.fps, None, codec="mpeg4", fmt="avi")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_jpeg_dir(target, frames)
    return spec.rel


def _make_video_safe(spec: VideoSpec, out_dir: str) -> tuple[str, str]:
    try:
        make_video(spec, out_dir)
        return spec.rel, ""
    except Exception as e:  # noqa: BLE001 -- reported by make_corpus, the others go on
        return spec.rel, f"{type(e).__name__}: {e}"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def make_corpus(out_dir: str | Path, size: str = "tiny", seed: int = 0,
                shortcut: str | None = None, workers: int = 1, progress: bool = True,
                n_identities: int | None = None,
                layouts: Sequence[str] = LAYOUTS) -> dict[str, Path]:
    """Render the synthetic corpus into ``out_dir`` (one folder per dataset layout).

    Args:
        out_dir: where ``fakeavceleb/``, ``lavdf/``, ``dftimit/``, ``dfdm/`` and the marker
            ``.complete.json`` go.
        size: ``"tiny"`` (24 identities, 72 px, ~270 files, about a minute on 2 cores) or
            ``"standard"`` (250 identities, 224 px, ~2,600 files).
        seed: corpus seed; the same arguments always give the same files.
        shortcut: ``None`` or ``"leading-silence"`` (fake FakeAVCeleb audio starts silent).
        workers: processes rendering videos in parallel (results do not depend on it).
        progress: show a tqdm progress bar.
        n_identities: override the number of training identities (held-out sets scale along);
            for tests and quick experiments.
        layouts: which dataset layouts to write (default all four).

    Returns:
        ``{layout: dataset root}`` for the requested layouts.

    Already-written files are kept (a crashed run resumes). A complete corpus made with the same
    arguments returns at once; one made with other arguments raises ``ValueError``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    bad = set(layouts) - set(LAYOUTS)
    if bad or not layouts:
        raise ValueError(f"layouts must be a non-empty subset of {LAYOUTS}, got {list(layouts)}")
    if n_identities is not None and n_identities < 2:
        raise ValueError("n_identities must be at least 2 (face swaps need a donor)")
    out = Path(out_dir)
    counts = _counts(size, n_identities)
    args = {"size": size, "seed": int(seed), "shortcut": shortcut,
            "n_identities": counts["identities"], "layouts": sorted(layouts)}
    roots = {name: out / name for name in layouts}
    marker, partial = out / ".complete.json", out / ".partial.json"
    for m in (marker, partial):
        if m.exists():
            old = json.loads(m.read_text())
            if {k: old.get(k) for k in args} != args:
                raise ValueError(f"{out} holds a corpus made with {({k: old.get(k) for k in args})}"
                                 f"; asked for {args}. Use another folder or delete it.")
            if m is marker:
                return roots
    _write_text(partial, json.dumps(args, indent=1))

    frame = counts["frame"]
    specs: list[VideoSpec] = []
    extra: dict[str, Any] = {}
    if "fakeavceleb" in layouts:
        s, rows = plan_fakeavceleb(seed, counts["identities"], frame,
                                   shortcut == "leading-silence")
        specs += s
        extra["rows"] = rows
    if "lavdf" in layouts:
        s, meta = plan_lavdf(seed, counts["lavdf_originals"], frame)
        specs += s
        extra["lavdf"] = meta
    if "dftimit" in layouts:
        specs += plan_dftimit(seed, counts["dftimit_subjects"], frame)
    if "dfdm" in layouts:
        specs += plan_dfdm(seed, counts["dfdm_reals"], counts["dfdm_per_model"], frame)

    failures: list[tuple[str, str]] = []
    bar = tqdm(total=len(specs), desc="synthetic corpus", unit="video", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(_make_video_safe, s, str(out)) for s in specs]
            for f in as_completed(futs):
                rel, err = f.result()
                if err:
                    failures.append((rel, err))
                bar.update()
    else:
        for s in specs:
            rel, err = _make_video_safe(s, str(out))
            if err:
                failures.append((rel, err))
            bar.update()
    bar.close()
    if failures:
        for rel, err in failures:
            log.error("synthetic: %s failed: %s", rel, err)
        raise RuntimeError(f"{len(failures)} of {len(specs)} videos failed (first: {failures[0]});"
                           " the others are written, re-run make_corpus to resume")

    if "rows" in extra:
        header = "source,target1,target2,method,category,type,race,gender,path,\n"
        body = "".join(",".join(r) + "\n" for r in extra["rows"])
        _write_text(roots["fakeavceleb"] / "meta_data.csv", header + body)
    if "lavdf" in extra:
        _write_text(roots["lavdf"] / "metadata.json", json.dumps(extra["lavdf"], indent=1))
    n_by = {name: sum(s.rel.startswith(name + "/") for s in specs) for name in layouts}
    _write_text(marker, json.dumps({**args, "counts": n_by, "kit_version": __version__},
                                   indent=1))
    partial.unlink(missing_ok=True)
    return roots

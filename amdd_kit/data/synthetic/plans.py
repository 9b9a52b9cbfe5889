"""Corpus plans: the list of videos (:class:`~.generators.VideoSpec`) of each dataset layout,
with the metadata files the real datasets ship (FakeAVCeleb ``meta_data.csv`` rows, LAV-DF
``metadata.json``).

Determinism: every video has its own seed (corpus seed + dataset + index), so the corpus does not
depend on the number of workers; identity parameters depend only on (seed, identity index).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from .generators import VideoSpec
from .identities import make_identity
from .methods import DFDM_MODELS, FAKEAVCELEB_METHODS, TYPES


def _media_choice(rng: np.random.Generator) -> tuple[Fraction, int, int, float]:
    fps = [Fraction(25), Fraction(30000, 1001), Fraction(24)][rng.choice(3, p=[0.8, 0.1, 0.1])]
    sr = int(rng.choice([16000, 22050, 44100, 48000]))
    channels = 2 if rng.random() < 0.2 else 1
    return fps, sr, channels, float(np.round(rng.uniform(2.0, 3.0), 2))


def plan_fakeavceleb(seed: int, n_ids: int, frame: int, shortcut: bool
                     ) -> tuple[list[VideoSpec], list[list[str]]]:
    """Video specs + meta_data.csv rows of the training corpus (FakeAVCeleb v1.2 layout)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10]))
    id_numbers = rng.choice(np.arange(1, 100_000), size=n_ids, replace=False)
    idents = [make_identity(i, seed, f"id{id_numbers[i]:05d}") for i in range(n_ids)]
    specs, rows = [], []
    for i, ident in enumerate(idents):
        vrng = np.random.default_rng(np.random.SeedSequence([seed, 11, i]))
        # swaps pair people of the same race and gender when the corpus has them
        others = ([j for j in range(n_ids) if j != i and idents[j].race == ident.race
                   and idents[j].gender == ident.gender]
                  or [j for j in range(n_ids) if j != i and idents[j].gender == ident.gender]
                  or [j for j in range(n_ids) if j != i])
        donor = int(vrng.choice(others))
        numbers = sorted(vrng.choice(np.arange(1, 13), size=2, replace=False))  # names repeat
        media = [_media_choice(vrng) for _ in range(2)]
        folder = f"{ident.race}/{ident.gender}/{ident.name}"
        for method, cat in FAKEAVCELEB_METHODS.items():
            for k in range(2 if method == "real" else 1):
                num = numbers[k]
                fps, sr, ch, dur = media[k]
                dname = idents[donor].name
                fname = {"real": f"{num:05d}.mp4", "rtvc": f"{num:05d}_fake.mp4",
                         "wav2lip": f"{num:05d}_wavtolip.mp4"}.get(
                    method, f"{num:05d}_{dname}_{method.replace('wav2lip', 'wavtolip')}.mp4")
                rel = f"{TYPES[cat]}/{folder}/{fname}"
                fake_seed = hash_seed(method, i, k)
                specs.append(VideoSpec(
                    rel=f"fakeavceleb/{rel}", method=method, ident=i, seed=i * 10 + k,
                    fake_seed=fake_seed, corpus_seed=seed, width=frame, height=frame, fps=fps,
                    sr=sr, channels=ch, duration=dur,
                    donor=donor if method in ("faceswap", "fsgan", "faceswap-wav2lip",
                                              "fsgan-wav2lip") else None,
                    shortcut=shortcut and method != "real", ident_name=ident.name))
                t1 = dname if specs[-1].donor is not None else "-"
                rows.append([ident.name, t1, "-", method, cat, TYPES[cat], ident.race,
                             ident.gender, fname, f"FakeAVCeleb/{TYPES[cat]}/{folder}"])
                if method == "fsgan-wav2lip" and i % 12 == 1:
                    # quirk of the real CSV: the same physical file listed under a second method
                    rows.append(rows[-1][:3] + ["faceswap-wav2lip"] + rows[-1][4:])
    return specs, rows


def hash_seed(*parts: Any) -> int:
    """A stable small integer from strings/ints (Python's hash() is salted per process)."""
    h = 0
    for p in parts:
        for ch in str(p) + "|":
            h = (h * 131 + ord(ch)) % (2**31 - 1)
    return h


def plan_lavdf(seed: int, n_orig: int, frame: int) -> tuple[list[VideoSpec], list[dict]]:
    """LAV-DF layout: each original has a real video and two partial fakes in the same split."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20]))
    splits = (["train", "dev", "test"] * n_orig)[:n_orig]
    numbers = rng.permutation(np.arange(1, 3 * n_orig + 1))
    kinds = ("lavdf-audio", "lavdf-visual", "lavdf-audiovisual")
    specs, meta, k = [], [], 0
    for o in range(n_orig):
        ident = 10_000 + o
        dur = float(np.round(rng.uniform(2.0, 3.0), 2))
        split = splits[o]
        orig_file = f"{split}/{numbers[k]:06d}.mp4"
        for j in range(3):
            method = "real" if j == 0 else kinds[(o + j - 1) % 3]
            file = f"{split}/{numbers[k]:06d}.mp4"
            k += 1
            periods: list[list[float]] = []
            if method != "real":
                for _ in range(int(rng.integers(1, 3))):
                    length = float(rng.uniform(0.3, 0.7))
                    s = float(np.round(rng.uniform(0.1, dur - length - 0.05), 3))
                    periods.append([s, float(np.round(s + length, 3))])
                periods = _merge(periods)
            spec = VideoSpec(rel=f"lavdf/{file}", method=method, ident=ident, seed=ident * 10,
                             fake_seed=hash_seed("lavdf", o, j), corpus_seed=seed, width=frame,
                             height=frame, fps=Fraction(25), sr=16000, channels=1, duration=dur,
                             periods=periods, crf=20)
            specs.append(spec)
            meta.append({
                "file": file, "split": split, "n_fakes": len(periods), "fake_periods": periods,
                "duration": dur, "original": None if method == "real" else orig_file,
                "modify_video": method in ("lavdf-visual", "lavdf-audiovisual"),
                "modify_audio": method in ("lavdf-audio", "lavdf-audiovisual"),
                "video_frames": spec.n_frames, "audio_channels": 1, "audio_frames": spec.n_samples,
            })
    return specs, meta


def _merge(periods: list[list[float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for s, e in sorted(periods):
        if out and s <= out[-1][1] + 0.05:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def plan_dftimit(seed: int, n_subjects: int, frame: int) -> list[VideoSpec]:
    """DeepfakeTIMIT + VidTIMIT: per subject 3 sentences: 2 HQ fakes, 1 LQ fake, 3 reals."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 30]))
    W, H = int(frame * 1.25) // 2 * 2, int(frame * 0.9375) // 2 * 2   # 4:3, like 512x384
    letters = "abcdefghijklmnoprstw"
    subj_idx = [20_000 + s for s in range(n_subjects)]
    names = []
    for s, idx in enumerate(subj_idx):
        g = "f" if make_identity(idx, seed).gender == "women" else "m"
        names.append(g + "".join(rng.choice(list(letters), 3)) + str(s % 10))
    specs = []
    for s, idx in enumerate(subj_idx):
        donor = subj_idx[(s + 1) % n_subjects] if n_subjects > 1 else 20_999
        dname = names[(s + 1) % n_subjects] if n_subjects > 1 else "mdon0"
        sentences = ["sa1", "sa2", f"si{int(rng.integers(500, 2300))}"]
        for j, sent in enumerate(sentences):
            dur = float(np.round(rng.uniform(2.0, 3.0), 2))
            common = dict(ident=idx, seed=idx * 10 + j, corpus_seed=seed, width=W, height=H,
                          fps=Fraction(25), sr=16000, channels=1, duration=dur)
            specs.append(VideoSpec(rel=f"dftimit/vidtimit/{names[s]}/video/{sent}", method="real",
                                   fake_seed=0, container="jpg",
                                   wav_rel=f"dftimit/vidtimit/{names[s]}/audio/{sent}.wav",
                                   **common))
            quality = "higher_quality" if j < 2 else "lower_quality"
            method = "dftimit-hq" if j < 2 else "dftimit-lq"
            folder = f"dftimit/{quality}/{names[s]}"
            specs.append(VideoSpec(rel=f"{folder}/{sent}-video-{dname}.avi", method=method,
                                   fake_seed=hash_seed("dftimit", s, j), donor=donor,
                                   container="avi", wav_rel=f"{folder}/{sent}.wav", **common))
    return specs


def plan_dfdm(seed: int, n_reals: int, per_model: int, frame: int) -> list[VideoSpec]:
    """DFDM (crf 23) fakes of 5 swap models + Celeb-DF-style reals."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 40]))
    W, H = int(frame * 1.25) // 2 * 2, frame
    idx = [30_000 + r for r in range(max(2, n_reals))]
    celeb = [int(v) for v in rng.choice(np.arange(0, 62), size=len(idx), replace=False)]
    scenes = [int(v) for v in rng.integers(0, 10, len(idx))]
    specs = []
    media = [_media_choice(rng) for _ in idx]
    for r in range(n_reals):
        fps, sr, ch, dur = media[r]
        specs.append(VideoSpec(rel=f"dfdm/Celeb-real/id{celeb[r]}_{scenes[r]:04d}.mp4",
                               method="real", ident=idx[r], seed=idx[r] * 10, fake_seed=0,
                               corpus_seed=seed, width=W, height=H, fps=Fraction(25), sr=sr,
                               channels=ch, duration=dur, crf=23))
    for m, (tag, style) in enumerate(DFDM_MODELS.items()):
        for k in range(per_model):
            r, cycle = (k + m) % n_reals, k // n_reals   # cycle > 0: another scene
            d = (r + 1 + cycle) % len(idx)
            d = d if d != r else (r + 1) % len(idx)
            fps, sr, ch, dur = media[r]
            specs.append(VideoSpec(
                rel=f"dfdm/DFDM_crf23/id{celeb[r]}_id{celeb[d]}_{scenes[r] + 10 * cycle:04d}"
                    f"_{tag}.mp4",
                method=style, ident=idx[r], seed=idx[r] * 10 + cycle,
                fake_seed=hash_seed("dfdm", tag, k), corpus_seed=seed, width=W, height=H,
                fps=Fraction(25), sr=sr, channels=ch, duration=dur, donor=idx[d], crf=23))
    return specs

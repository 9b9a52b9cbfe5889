"""Identities: one synthetic person's parameters (face, hair, voice), drawn from a seed.

The face is shaded like a lit face (eye sockets darker than the cheeks, lighter nose bridge,
darker mouth, face brighter than the background), so that OpenCV's Haar frontal-face cascade
finds it, as preprocessing needs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


RACES = ("African", "Asian (East)", "Asian (South)", "Caucasian (American)", "Caucasian (European)")


GENDERS = ("men", "women")


_SKIN = {  # RGB palettes per race folder (jittered per identity)
    "African": ((110, 74, 52), (140, 98, 70), (92, 62, 45)),
    "Asian (East)": ((232, 200, 170), (215, 180, 145), (240, 210, 185)),
    "Asian (South)": ((175, 128, 95), (160, 115, 85), (195, 150, 115)),
    "Caucasian (American)": ((235, 200, 178), (222, 184, 160), (242, 212, 190)),
    "Caucasian (European)": ((238, 205, 185), (225, 190, 165), (245, 218, 200)),
}


_HAIR = ((20, 15, 12), (45, 30, 20), (70, 45, 25), (110, 75, 40), (150, 110, 60), (90, 40, 20),
         (35, 35, 40))


@dataclass(frozen=True)
class Identity:
    """Parameters of one synthetic person (all sizes are fractions of the frame height)."""

    name: str                      # "id00042"
    race: str
    gender: str
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int                # 0 short, 1 long sides, 2 receding
    shirt: tuple[float, float, float]
    bg_seed: int
    bg_level: float                # background brightness relative to the skin
    face_w: float                  # half-width of the head ellipse
    face_h: float                  # half-height
    eye_dx: float                  # eye offset from the centre, fraction of face_w
    eye_y: float                   # eye height, fraction of face_h (negative = above centre)
    eye_w: float
    mouth_w: float
    nose: float
    f0: float                      # mean pitch in Hz
    formant_scale: float           # vocal tract length factor
    speech_rate: float             # syllables per second


def make_identity(index: int, seed: int = 0, name: str | None = None) -> Identity:
    """Draw identity number ``index`` of corpus ``seed`` (deterministic)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, index]))
    race = RACES[index % len(RACES)]
    gender = GENDERS[(index // len(RACES)) % 2]
    skin = np.array(_SKIN[race][rng.integers(3)], float) * rng.uniform(0.93, 1.05, 3)
    women = gender == "women"
    return Identity(
        name=name or f"id{index:05d}", race=race, gender=gender,
        skin=tuple(np.clip(skin, 0, 255)),
        hair=tuple(np.array(_HAIR[rng.integers(len(_HAIR))], float) * rng.uniform(0.85, 1.15, 3)),
        hair_style=int(rng.integers(3)) if not women else int(rng.choice([0, 1, 1])),
        shirt=tuple(rng.uniform(30, 210, 3)),
        bg_seed=int(rng.integers(2**31)), bg_level=float(rng.uniform(0.35, 0.6)),
        face_w=float(rng.uniform(0.24, 0.28)), face_h=float(rng.uniform(0.32, 0.36)),
        eye_dx=float(rng.uniform(0.34, 0.42)), eye_y=float(rng.uniform(-0.21, -0.15)),
        eye_w=float(rng.uniform(0.15, 0.19)), mouth_w=float(rng.uniform(0.28, 0.38)),
        nose=float(rng.uniform(0.18, 0.26)),
        f0=float(rng.uniform(185, 235) if women else rng.uniform(95, 140)),
        formant_scale=float(rng.uniform(1.05, 1.15) if women else rng.uniform(0.9, 1.0)),
        speech_rate=float(rng.uniform(3.5, 5.0)),
    )

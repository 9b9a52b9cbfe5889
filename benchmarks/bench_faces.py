#!/usr/bin/env python
"""Face detectors side by side: what each finds and what it costs per frame (one core).

``DataConfig.face_detector`` chooses between OpenCV's Haar cascade (``haar``, the default) and
dlib's HOG detector (``dlib``, the ``faces`` extra). This prints, for each detector:

* a real photograph (scikit-image's ``astronaut``, head and shoulders at 224 px) and copies of
  it: mirrored, darkened (a dim room), tilted by +-12/20/30 degrees (a head leaning, as in phone
  videos), blurred, noisy and dark, JPEG at quality 5; found or not;
* ``--faces`` synthetic faces (224 px frames of the corpus' own people, rendered by its
  generator, every FakeAVCeleb method): how many are found;
* eight non-face photographs of scikit-image and ten synthetic backgrounds: false hits;
* milliseconds per 224 px frame (mean over the synthetic faces, one thread on one core).

    python benchmarks/bench_faces.py [--faces 192] [--upsample 1]

Needs ``dlib-bin`` (``pip install -e '.[faces]'``). On a machine shared with other jobs the
times are noisy: compare the two detectors within one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import media  # noqa: E402  (tests/media.py: the photograph and the synthetic faces)
from amdd_kit.data import faces  # noqa: E402


def hard_copies(photo: np.ndarray) -> dict[str, np.ndarray]:
    """Harder copies of the 224 px photograph: tilts, blur, noise in the dark, heavy JPEG."""
    h, w = photo.shape[:2]
    out = {}
    for angle in (-30, -20, -12, 12, 20, 30):
        M = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        out[f"tilted {angle:+d}"] = cv2.warpAffine(photo, M, (w, h), borderMode=cv2.BORDER_REFLECT)
    out["blurred (sigma 3)"] = cv2.GaussianBlur(photo, (0, 0), 3)
    rng = np.random.default_rng(0)
    out["dark + noise"] = np.clip(photo * 0.2 + rng.normal(0, 6, photo.shape), 0, 255
                                  ).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 5])
    out["JPEG q5"] = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def non_faces(size: int = 224) -> dict[str, np.ndarray]:
    """Photographs without a person (scikit-image's bundled ones) and synthetic backgrounds."""
    from skimage import data

    from amdd_kit.data.synthetic.identities import make_identity
    from amdd_kit.data.synthetic.video import background

    out = {}
    for name in ("coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "text", "camera",
                 "coins"):
        im = np.asarray(getattr(data, name)())
        im = np.repeat(im[..., None], 3, 2) if im.ndim == 2 else im[..., :3]
        out[name] = np.ascontiguousarray(cv2.resize(im.astype(np.uint8), (size, size),
                                                    interpolation=cv2.INTER_AREA))
    for i in range(10):
        out[f"background {i}"] = background(make_identity(i), size, size).astype(np.uint8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=192, help="synthetic faces to render")
    ap.add_argument("--upsample", type=int, default=1, help="dlib's upsample_num_times")
    a = ap.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core
    cv2.setNumThreads(1)
    try:
        faces.face_detector("dlib")
    except ImportError as e:
        sys.exit(f"bench_faces: {e}")
    detectors = {"haar": faces.haar_face,
                 "dlib": lambda im: faces.dlib_face(im, upsample=a.upsample)}

    photos = {**media.photo_copies(224), **hard_copies(media.photo_copies(224)["photo"])}
    print(f"real photograph (astronaut, 224 px) and copies; dlib upsample={a.upsample}, "
          f"score >= {faces.DLIB_MIN_SCORE}")
    print(f"{'image':20s} " + " ".join(f"{d:>6s}" for d in detectors))
    for name, im in photos.items():
        print(f"{name:20s} " + " ".join(f"{'found' if det(im) else '-':>6s}"
                                        for det in detectors.values()))

    t0 = time.perf_counter()
    synth = media.synthetic_faces(a.faces, 224)
    print(f"\n{len(synth)} synthetic faces (224 px, 7 methods) rendered in "
          f"{time.perf_counter() - t0:.0f} s")
    others = non_faces()
    print(f"{'detector':8s} {'synthetic found':>16s} {'ms/frame':>9s} {'photo+copies':>13s} "
          f"{'false hits':>11s}")
    for name, det in detectors.items():
        det(synth[0])                                        # warm-up (cascade / model load)
        t0 = time.perf_counter()
        found = sum(det(f) is not None for f in synth)
        ms = 1000 * (time.perf_counter() - t0) / len(synth)
        ph = sum(det(im) is not None for im in photos.values())
        fp = sum(det(im) is not None for im in others.values())
        print(f"{name:8s} {found:>10d}/{len(synth):<5d} {ms:9.1f} {ph:>9d}/{len(photos):<3d} "
              f"{fp:>7d}/{len(others)}")
    print(f"\none core ({os.sched_getaffinity(0)}), cv2 threads 1; times include each "
          "detector's own resizing (Haar shrinks frames to 128 px, dlib enlarges them "
          f"{2 ** a.upsample}x)")


if __name__ == "__main__":
    main()

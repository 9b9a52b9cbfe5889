"""The second face detector (dlib's HOG, the ``faces`` extra) and ``DataConfig.face_detector``:
a real photograph and harder copies of it, synthetic faces, the choice reaching
``clips_from_video`` and ``preprocess_dataset``, and the error when the package is missing."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import media  # noqa: E402

from amdd_kit.config import DataConfig, get_config  # noqa: E402
from amdd_kit.data import faces  # noqa: E402
from amdd_kit.data.decode import clips_from_video  # noqa: E402

dlib = pytest.importorskip("dlib", reason="the faces extra is not installed: "
                                          "pip install -e '.[faces]' (make setup does)")

#: where the astronaut's face is in media.photo_copies(224)["photo"]: centre x, y and side (px),
#: read off Haar's and dlib's boxes (they agree within a few px)
PHOTO_FACE = (108, 90, 78)


def _centre_side(box):
    x, y, w, h = box
    return x + w / 2, y + h / 2, max(w, h)


def _on_the_face(box, expect=PHOTO_FACE, tol=0.3):
    """The box's centre lies within ``tol`` of a face side of the expected centre, and its side
    is within +-40 % of the expected side."""
    cx, cy, side = _centre_side(box)
    ex, ey, es = expect
    return np.hypot(cx - ex, cy - ey) <= tol * es and 0.6 * es <= side <= 1.4 * es


@pytest.mark.parametrize("name", ["photo", "flipped", "darkened"])
def test_dlib_finds_the_face_of_a_real_photograph(name):
    img = media.photo_copies(224)[name]
    box = faces.dlib_face(img)
    assert box is not None, name
    expect = PHOTO_FACE if name != "flipped" else (224 - PHOTO_FACE[0], *PHOTO_FACE[1:])
    assert _on_the_face(box, expect), (name, box)


def test_dlib_finds_a_tilted_head():
    """A head tilted by 30 degrees (Haar's frontal cascade misses it: bench_faces.py)."""
    photo = media.photo_copies(224)["photo"]
    for angle in (-30, 30):
        M = cv2.getRotationMatrix2D((112, 112), angle, 1.0)
        img = cv2.warpAffine(photo, M, (224, 224), borderMode=cv2.BORDER_REFLECT)
        box = faces.dlib_face(img)
        assert box is not None, angle
        # the face centre turns with the image about the frame centre
        c = M @ np.array([PHOTO_FACE[0], PHOTO_FACE[1], 1.0])
        assert _on_the_face(box, (c[0], c[1], PHOTO_FACE[2]), tol=0.35), (angle, box)


def test_dlib_finds_synthetic_faces_and_no_face_on_a_wall():
    frames = media.synthetic_faces(21, 224)             # 3 frames of each of the 7 methods
    hits = [faces.dlib_face(f) for f in frames]
    assert all(h is not None for h in hits), [i for i, h in enumerate(hits) if h is None]
    # the synthetic head sits near the frame centre, its face about half the frame high
    centres = np.array([_centre_side(h) for h in hits])
    assert np.abs(centres[:, :2] - 112).max() < 40, centres
    for seed in range(3):
        assert faces.dlib_face(media.wall_frame(224, 224, seed)) is None


def test_face_detector_is_chosen_by_name_and_reaches_clips_from_video(tmp_path):
    assert faces.face_detector("haar") is faces.haar_face
    assert faces.face_detector("dlib") is faces.dlib_face
    with pytest.raises(ValueError, match="choose from"):
        faces.face_detector("yunet")
    assert get_config("tiny").data.face_detector == "haar"
    assert get_config("tiny", {"data.face_detector": "dlib"}).data.face_detector == "dlib"
    video = media.write_video(tmp_path / "v.mp4", seconds=1.5)
    calls = []
    real = faces.FACE_DETECTORS["dlib"]
    faces.FACE_DETECTORS["dlib"] = lambda im: calls.append(im.shape) or real(im)
    try:
        clips = clips_from_video(video, dataclasses.replace(DataConfig(), face_detector="dlib"))
    finally:
        faces.FACE_DETECTORS["dlib"] = real
    assert calls, "clips_from_video did not call the configured detector"
    assert clips.frames.shape[1:] == (8, 3, 64, 64) and clips.info["face_fraction"] >= 0.8


def test_missing_package_and_unknown_name_fail_once_with_the_next_step(tmp_path, monkeypatch):
    from amdd_kit.data.preprocess import preprocess_dataset

    cfg = dataclasses.replace(DataConfig(), face_detector="nope")
    with pytest.raises(ValueError, match="unknown face detector 'nope'"):
        preprocess_dataset("csv", tmp_path, tmp_path / "store", cfg, progress=False)
    faces._dlib_detector.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)            # as if dlib-bin were not installed
    try:
        with pytest.raises(ImportError, match=r"pip install -e '\.\[faces\]'"):
            faces.face_detector("dlib")
    finally:
        faces._dlib_detector.cache_clear()

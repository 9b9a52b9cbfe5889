"""Every generator's trace must reach the model: measured on the clip store (after H.264, face
detection and the crop), not on the rendered frames.

A small synthetic FakeAVCeleb corpus is rendered, preprocessed with the ``tiny`` config, and
each generator's own trace (``amdd_kit.traces.TRACE_MEASURES``) must separate its clips from
the real ones (ROC AUC). The same measures on the classic pipeline (box resized down) show what
a resampling crop does to the up-sampling checkerboard: the check can fail.
"""
from __future__ import annotations

import pytest

from amdd_kit.config import get_config
from amdd_kit.data import synthetic as S
from amdd_kit.data.preprocess import preprocess_dataset
from amdd_kit.data.store import ClipStore
from amdd_kit.traces import store_traces, trace_separability

#: generator -> the measures that must show its trace, and the AUC they must reach
EXPECTED = {
    "faceswap": {"tone_shift": 0.8},
    "fsgan": {"checkerboard_db": 0.95},
    "rtvc": {"high_band": 0.85},
    "wav2lip": {"mouth_sharpness": 0.9, "high_band": 0.85},
    # the swapped face is soft already (half resolution), so its soft mouth stands out less
    "faceswap-wav2lip": {"tone_shift": 0.8, "mouth_sharpness": 0.8, "high_band": 0.85},
    "fsgan-wav2lip": {"checkerboard_db": 0.95, "mouth_sharpness": 0.9, "high_band": 0.85},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracecorpus")
    S.make_corpus(out, "tiny", seed=5, n_identities=8, layouts=["fakeavceleb"], workers=2,
                  progress=False)
    return out / "fakeavceleb"


def _separability(corpus, tmp_path, **data):
    cfg = get_config("tiny", {f"data.{k}": v for k, v in data.items()}).data
    preprocess_dataset("fakeavceleb", corpus, tmp_path / "store", cfg, workers=1, progress=False)
    return trace_separability(store_traces(ClipStore(tmp_path / "store")))


def test_every_trace_survives_to_the_clip_store(corpus, tmp_path):
    sep = _separability(corpus, tmp_path)
    for method, need in EXPECTED.items():
        for measure, auc in need.items():
            assert sep.at[method, measure] >= auc, (method, measure, sep.round(3).to_dict())
    # the measures are specific: a generator without that trace is not told apart by it
    assert sep.at["rtvc", "checkerboard_db"] < 0.75
    assert sep.at["faceswap", "high_band"] < 0.75


def test_a_resampling_crop_erases_the_checkerboard(corpus, tmp_path):
    sep = _separability(corpus, tmp_path, crop_mode="resize", image_size=48)
    assert sep.at["fsgan", "checkerboard_db"] < 0.8, sep.round(3).to_dict()

"""Explanations on toy models whose decision depends on a known region of the input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from amdd_kit import explain as E

H = W = 16
N_MELS, S = 16, 32


def quadrant_mask(q: int, h: int = H, w: int = W) -> torch.Tensor:
    """1 inside quadrant q (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)."""
    m = torch.zeros(h, w)
    r, c = divmod(q, 2)
    m[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2] = 1
    return m


class ToyVisual(nn.Module):
    """Sees only one quadrant of each frame; ``layer4`` halves the resolution like a ResNet."""

    def __init__(self, quadrant: int):
        super().__init__()
        self.register_buffer("mask", quadrant_mask(quadrant))
        self.layer4 = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False),
                                    nn.ReLU())
        with torch.no_grad():
            self.layer4[0].weight.abs_()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:       # [B,T,3,H,W] -> [B]
        B, T = frames.shape[:2]
        a = self.layer4(frames.flatten(0, 1) * self.mask)             # [B*T,4,H/2,W/2]
        return a.mean(dim=(1, 2, 3)).view(B, T).mean(1)


class Toy(nn.Module):
    """det_logit = visual quadrant score + a mel-region score; attr class 1 = mel only."""

    def __init__(self, quadrant: int = 0, mel_rows=(0, 8), mel_cols=(16, 32)):
        super().__init__()
        self.visual = ToyVisual(quadrant)
        self.mel_rows, self.mel_cols = mel_rows, mel_cols
        self.w_audio = nn.Parameter(torch.tensor(2.0))

    def forward(self, frames, mel):
        v = self.visual(frames)
        r, c = self.mel_rows, self.mel_cols
        a = self.w_audio * mel[:, r[0]:r[1], c[0]:c[1]].mean(dim=(1, 2))
        attr = torch.stack([v, a] + [torch.zeros_like(v)] * 5, dim=1)
        return {"det_logit": v + a, "attr_logits": attr}


def inputs(b=1, t=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, H, W, generator=g), torch.rand(b, N_MELS, S, generator=g) + 0.5


@pytest.mark.parametrize("quadrant", [0, 3])
def test_gradcam_peaks_in_the_quadrant_the_model_uses(quadrant):
    model = Toy(quadrant)
    frames, mel = inputs(b=2)
    cam = E.gradcam(model, frames, mel, target="fake")
    assert cam.shape == (2, 3, H, W)
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    inside = quadrant_mask(quadrant).bool().numpy()
    for clip in cam:
        for frame in clip:
            r, c = np.unravel_index(frame.argmax(), frame.shape)
            assert inside[r, c]
            assert frame[inside].mean() > 5 * frame[~inside].mean()


def test_gradcam_layer_lookup_and_target_choice():
    model = Toy(1)
    assert E.find_gradcam_layer(model) is model.visual.layer4
    model.visual.gradcam_layer = model.visual.layer4[0]
    assert E.find_gradcam_layer(model) is model.visual.layer4[0]
    frames, mel = inputs()
    # attribution class 1 ("rtvc") depends only on the mel: no visual evidence at all
    assert np.allclose(E.gradcam(model, frames, mel, target="rtvc"), 0)
    # class 0 ("real") is the visual score: same map as the detection target
    assert np.allclose(E.gradcam(model, frames, mel, target=0),
                       E.gradcam(model, frames, mel, target="fake"), atol=1e-6)
    with pytest.raises(ValueError):
        E.gradcam(model, frames, mel, target="nonsense")
    with pytest.raises(ValueError):
        E.find_gradcam_layer(nn.Linear(2, 2))


def test_mel_occlusion_and_gradient_peak_in_the_region_the_model_uses():
    model = Toy(0, mel_rows=(8, 16), mel_cols=(0, 8))
    frames, mel = inputs()
    sal = E.mel_occlusion(model, frames[0], mel[0], patch=(4, 4))
    assert sal.shape == (N_MELS, S)
    region = np.zeros((N_MELS, S), bool)
    region[8:16, 0:8] = True
    assert sal.max() == pytest.approx(1.0)
    assert region[np.unravel_index(sal.argmax(), sal.shape)]
    assert np.allclose(sal[~region], 0)
    assert sal[region].min() > 0
    grad = E.mel_gradient(model, frames, mel)
    assert grad.shape == (1, N_MELS, S)
    assert np.allclose(grad[0][~region], 0) and grad[0][region].min() > 0
    # overlapping patches and a patch larger than the mel still cover every cell
    sal2 = E.mel_occlusion(model, frames, mel, patch=(6, 40), stride=(3, 3))
    assert sal2.shape == (N_MELS, S) and sal2[region].min() > 0


def test_pick_examples_returns_correct_and_wrong_per_method():
    df = pd.DataFrame({
        "clip_id": range(8),
        "method": ["real", "real", "rtvc", "rtvc", "rtvc", "fsgan", "lavdf-x", "lavdf-x"],
        "pred_method": ["real", "rtvc", "rtvc", "rtvc", "real", "fsgan", "real", "rtvc"],
        "label": [0, 0, 1, 1, 1, 1, 1, 1],
        "pred_label": [0, 1, 1, 1, 0, 1, 0, 1],
    })
    picks = E.pick_examples(df, n_per_method=1, seed=0)
    got = set(zip(picks.method, picks.outcome))
    assert got == {("real", "correct"), ("real", "wrong"), ("rtvc", "correct"),
                   ("rtvc", "wrong"), ("fsgan", "correct"), ("lavdf-x", "correct"),
                   ("lavdf-x", "wrong")}
    assert list(picks.method[:2]) == ["real", "real"]          # label order
    ok = picks[picks.outcome == "correct"]
    assert ((ok.pred_method == ok.method) | ~ok.method.isin(E.METHODS)).all()
    assert len(E.pick_examples(df, n_per_method=5)) == 8
    with pytest.raises(KeyError):
        E.pick_examples(df.drop(columns="pred_method"))


def test_explanation_figure_draws_frames_and_both_mel_panels():
    rng = np.random.default_rng(0)
    ex = {"clip_id": 3, "method": "fsgan", "pred_method": "fsgan", "p_fake": 0.9,
          "target": "fake", "frames": rng.integers(0, 255, (4, 3, H, W), dtype=np.uint8),
          "mel": rng.normal(size=(N_MELS, S)).astype(np.float32),
          "cam": rng.random((4, H, W)).astype(np.float32),
          "mel_saliency": rng.random((N_MELS, S)).astype(np.float32)}
    fig = E.explanation_figure(ex)
    kinds = [t.type for t in fig.data]
    assert kinds.count("image") == 4 and kinds.count("heatmap") == 2
    assert "fsgan" in fig.layout.title.text

"""amdd-kit: a Jupyter-first kit for audio-visual deepfake detection and generator attribution.

Implements AMDD (Attribution-Guided Multimodal Deepfake Detection, Ahmad, Zhang & Mao, 2026) and
CAD (cross-modal alignment and distillation) as a comparison, on a synthetic corpus in the
FakeAVCeleb v1.2 layout or on the real datasets. See README.md and docs/contracts.md.
"""
__version__ = "0.1.0"

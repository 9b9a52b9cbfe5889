"""amdd-kit: a Jupyter-first kit for audio-visual deepfake detection and generator attribution.

Implements AMDD (Attribution-Guided Multimodal Deepfake Detection, Ahmad, Zhang & Mao, 2026) and
CAD (cross-modal alignment and distillation) as a comparison, on a synthetic corpus in the
FakeAVCeleb v1.2 layout or on the real datasets. See README.md and docs/contracts.md.
"""
import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait sleep instead of spinning: on a laptop where a browser or a second
# kernel keeps one core busy, spinning threads made training 2.6x slower, sleeping ones 1.4x
# (benchmarks/bench_train.py --threads-table). OpenMP reads it when torch loads, so it is set
# here, before any module of the kit imports torch; a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

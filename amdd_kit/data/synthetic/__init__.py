"""A synthetic audio-visual deepfake corpus, rendered deterministically from a seed.

Real deepfake datasets are gated, so the kit renders its own: parametric talking faces with a
source-filter voice, "forged" by seven generators that mirror FakeAVCeleb's methods. Every clip is
written as a REAL media file (H.264 + AAC mp4, mpeg4 avi, JPEG frames + wav) in the folder layout
of the real dataset, so the real-dataset adapters (:mod:`amdd_kit.data.adapters`) read it unchanged.

The package, in the order a clip is made:

================ ===========================================================================
``identities``   one person's parameters: head shape, skin tone, eyes with blinks, brows, nose,
                 hair, shirt, textured background, voice (:func:`make_identity`)
``speech``       source-filter speech (:func:`plan_speech`, :func:`synth_speech`) and the
                 forged voices (cloned, TTS)
``video``        head motion, frame geometry, frame rendering; the mouth follows the speech
                 envelope with a natural lag of 40-80 ms, the coupling that forgeries break
``generators``   how each method forges a video (:data:`SWAP_STYLES`, :func:`render_video`)
``methods``      which methods exist and the trace each leaves (:data:`TRACE_DESCRIPTIONS`)
``media``        writing mp4 / avi / wav / JPEG folders atomically
``plans``        the videos of each dataset layout and their metadata rows
``corpus``       :func:`make_corpus`: render and write everything (resumable, in parallel)
================ ===========================================================================

Generators and their traces
---------------------------
Every trace strength is drawn per video (``strength`` in [0.5, 1.5]), so no single threshold
separates a method; no trace is a constant pixel or a label-coloured border. The table is
:data:`TRACE_DESCRIPTIONS` (``pd.DataFrame(TRACE_DESCRIPTIONS).T`` prints it, with the trace
labels a model learns, :data:`amdd_kit.config.METHOD_TRACES`):

{trace_table}

Held-out sets (generators never seen in training, identities never seen in training):
``lavdf/`` (LAV-DF layout) holds partial fakes, edited only inside ``fake_periods``;
``dftimit/`` (DeepfakeTIMIT + VidTIMIT layout) holds silent mpeg4 .avi fakes with the real audio
in a .wav beside them and VidTIMIT reals as JPEG frames; ``dfdm/`` (DFDM layout, crf 23) holds
five face-swap models with real audio (file tags: :data:`DFDM_MODELS`).

Balance: every training identity gets 2 real videos and one video per fake method, so the 7
attribution classes are balanced except real (2x); real:fake is 1:3 (FakeAVCeleb is ~1:42).
``size="tiny"``: 24 identities (192 videos, 72x72: the face fits the tiny config's 64 px
crop without resampling); ``"standard"``: 250 identities (2,000 videos, 224x224). Frame rates
are mostly 25 fps (some 29.97 and 24), audio at 16/22.05/44.1/48 kHz, some stereo, durations
2-3 s.

Shortcut (``shortcut="leading-silence"``, off by default): every fake FakeAVCeleb video's audio
starts with 0.2-0.4 s of near-silence, the known FakeAVCeleb shortcut (Smeu et al.,
arXiv 2412.00175). Reals start speaking within 0.1 s either way.

Determinism: every video has its own seed (corpus seed + dataset + index), so the corpus does
not depend on ``workers``; identity parameters depend only on (seed, identity index).
"""
from __future__ import annotations

from .corpus import LAYOUTS, SHORTCUTS, SIZES, make_corpus, make_video
from .generators import SWAP_STYLES, SwapStyle, VideoSpec, degrade_mouth, render_video, swap_face
from .identities import GENDERS, RACES, Identity, make_identity
from .media import write_jpeg_dir, write_video, write_wav
from .methods import DFDM_MODELS, FAKEAVCELEB_METHODS, TRACE_DESCRIPTIONS, TYPES, trace_table
from .plans import hash_seed, plan_dfdm, plan_dftimit, plan_fakeavceleb, plan_lavdf
from .speech import (SpeechPlan, clone_voice, plan_speech, speech_envelope, synth_speech,
                     tts_voice, vocoder_smear)
from .video import (Geometry, Motion, background, face_mask, frame_geometry, make_motion,
                    mouth_box, mouth_track, render_frame)

if __doc__:  # the trace table is rendered from TRACE_DESCRIPTIONS, its one source
    __doc__ = __doc__.replace("{trace_table}", trace_table())

__all__ = [
    "LAYOUTS", "SHORTCUTS", "SIZES", "make_corpus", "make_video",
    "SWAP_STYLES", "SwapStyle", "VideoSpec", "degrade_mouth", "render_video", "swap_face",
    "GENDERS", "RACES", "Identity", "make_identity",
    "write_jpeg_dir", "write_video", "write_wav",
    "DFDM_MODELS", "FAKEAVCELEB_METHODS", "TRACE_DESCRIPTIONS", "TYPES", "trace_table",
    "hash_seed", "plan_dfdm", "plan_dftimit", "plan_fakeavceleb", "plan_lavdf",
    "SpeechPlan", "clone_voice", "plan_speech", "speech_envelope", "synth_speech", "tts_voice",
    "vocoder_smear",
    "Geometry", "Motion", "background", "face_mask", "frame_geometry", "make_motion",
    "mouth_box", "mouth_track", "render_frame",
]

"""The generators of the synthetic corpus: which methods exist and the trace each leaves.

:data:`TRACE_DESCRIPTIONS` is read from one table (``_TRACES`` below); the table in the package
docstring is rendered from it by :func:`trace_table`, so the two cannot drift apart. The trace
*labels* a model learns per modality are :data:`amdd_kit.config.METHOD_TRACES`; each row here
carries them (``trace_visual``, ``trace_audio``) from there.
"""
from __future__ import annotations

import textwrap

from ...config import METHOD_TRACES


TYPES = {"A": "RealVideo-RealAudio", "B": "RealVideo-FakeAudio", "C": "FakeVideo-RealAudio",
         "D": "FakeVideo-FakeAudio"}


FAKEAVCELEB_METHODS: dict[str, str] = {  # method -> category letter
    "real": "A", "rtvc": "B", "faceswap": "C", "fsgan": "C", "wav2lip": "D",
    "faceswap-wav2lip": "D", "fsgan-wav2lip": "D",
}


DFDM_MODELS: dict[str, str] = {  # file tag -> swap style
    "1faceswap": "dfdm-faceswap", "2lightweight": "dfdm-lightweight", "3iae": "dfdm-iae",
    "4dfaker": "dfdm-dfaker", "5dfl_h128": "dfdm-dfl-h128",
}


#: One entry per generator: ``method | dataset | category`` on one line, then its ``video:`` and
#: ``audio:`` traces (lines indented further carry on the text). The one source of
#: :data:`TRACE_DESCRIPTIONS` and of the package docstring's table.
_TRACES = """
real | fakeavceleb | A (RVRA)
    video: none; lips follow the speech envelope with a 40-80 ms lag
    audio: none; full band
rtvc | fakeavceleb | B (RVFA)
    video: none, but the lips no longer match the (new) speech
    audio: cloned voice: other utterance, flatter/shifted pitch, vocoder smearing,
        low-pass 4-5 kHz
faceswap | fakeavceleb | C (FVRA)
    video: donor face blended in at half resolution: soft face, seam at the mask edge,
        colour/tone mismatch
    audio: none
fsgan | fakeavceleb | C (FVRA)
    video: swap with softer blend + 2-px up-sampling checkerboard in the face + slight
        blur
    audio: none
wav2lip | fakeavceleb | D (FVFA)
    video: mouth re-rendered at low resolution, driven by the fake audio with zero lag
    audio: cloned voice
faceswap-wav2lip | fakeavceleb | D (FVFA)
    video: faceswap + wav2lip mouth
    audio: cloned voice
fsgan-wav2lip | fakeavceleb | D (FVFA)
    video: fsgan + wav2lip mouth
    audio: cloned voice
lavdf-audio | lavdf | RVFA (partial)
    video: none
    audio: monotone TTS voice band-limited at 6-7 kHz, only inside fake_periods
lavdf-visual | lavdf | FVRA (partial)
    video: mouth re-rendered (other motion, low resolution, darker lips) inside
        fake_periods
    audio: none
lavdf-audiovisual | lavdf | FVFA (partial)
    video: as lavdf-visual
    audio: as lavdf-audio
dftimit-hq | dftimit | FVRA
    video: GAN swap, 128-px face, wide soft blend, additive noise texture
    audio: none (real wav beside the video)
dftimit-lq | dftimit | FVRA
    video: GAN swap, 64-px face, wide soft blend, additive noise texture
    audio: none (real wav beside the video)
dfdm-faceswap | dfdm | FVRA
    video: 64-px face, hard mask, no colour correction
    audio: none
dfdm-lightweight | dfdm | FVRA
    video: 32-px face, strong blur
    audio: none
dfdm-iae | dfdm | FVRA
    video: colour cast + sharp ring seam
    audio: none
dfdm-dfaker | dfdm | FVRA
    video: rectangular mask, 8x8 block quantisation
    audio: none
dfdm-dfl-h128 | dfdm | FVRA
    video: sharp face with unsharp-mask halo, smooth mask
    audio: none
"""


def _parse(text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    row: dict[str, str] = {}
    key = ""
    for line in text.strip("\n").splitlines():
        if not line.startswith(" "):
            method, dataset, category = (s.strip() for s in line.split("|"))
            row = out[method] = {"dataset": dataset, "category": category}
        elif not line.startswith("     "):              # "    video: ..." / "    audio: ..."
            key, _, rest = line.strip().partition(": ")
            row[key] = rest
        else:
            row[key] += " " + line.strip()
    return out


#: method -> ``dataset``, ``category``, ``video`` and ``audio`` (the traces in words), then
#: ``trace_visual`` and ``trace_audio`` (the labels of :data:`amdd_kit.config.METHOD_TRACES`; ""
#: for the held-out generators, which have none). ``pd.DataFrame(TRACE_DESCRIPTIONS).T`` prints it.
TRACE_DESCRIPTIONS: dict[str, dict[str, str]] = {
    m: {**row, **dict(zip(("trace_visual", "trace_audio"), METHOD_TRACES.get(m, ("", ""))))}
    for m, row in _parse(_TRACES).items()}


def trace_table(video_width: int = 36, audio_width: int = 30) -> str:
    """:data:`TRACE_DESCRIPTIONS` as a reStructuredText simple table (shown in the package
    docstring): ``method``, ``dataset``, ``category``, ``video trace``, ``audio trace``."""
    head = ("method", "dataset", "category", "video trace", "audio trace")
    cells = [(m, r["dataset"], r["category"], textwrap.wrap(r["video"], video_width),
              textwrap.wrap(r["audio"], audio_width)) for m, r in TRACE_DESCRIPTIONS.items()]
    w = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(3)] + \
        [video_width, audio_width]
    rule = " ".join("=" * n for n in w)

    def line(parts) -> str:
        return " ".join(p.ljust(n) for p, n in zip(parts, w)).rstrip()

    out = [rule, line(head), rule]
    for m, d, c, v, a in cells:
        for k in range(max(len(v), len(a), 1)):
            first = (m, d, c) if k == 0 else ("", "", "")
            out.append(line((*first, v[k] if k < len(v) else "", a[k] if k < len(a) else "")))
    out.append(rule)
    return "\n".join(out)


__all__ = ['TYPES', 'FAKEAVCELEB_METHODS', 'DFDM_MODELS', 'TRACE_DESCRIPTIONS', 'trace_table']

"""The held-out sets' own layouts: LAV-DF, DeepfakeTIMIT (+ VidTIMIT), DFDM, AV-Deepfake1M.

* ``lavdf`` -- LAV-DF ``metadata.json`` (or ``metadata.min.json``) + ``{train,dev,test}/*.mp4``.
  ``method`` is ``real``, ``lavdf-visual``, ``lavdf-audio`` or ``lavdf-audiovisual`` from the two
  ``modify_*`` flags; ``fake_segments`` holds ``fake_periods``; ``identity`` is the ``original``
  video a fake was made from (the video itself for reals), so a real and its edits stay together.
* ``dftimit`` -- DeepfakeTIMIT ``{higher_quality,lower_quality}/<subject>/<sentence>-video-<donor>.avi``
  (method ``dftimit-hq`` / ``dftimit-lq``; a ``<sentence>.wav`` beside the video becomes
  ``audio_path``), plus VidTIMIT reals when a ``vidtimit/`` folder sits in the root or next to the
  DeepfakeTIMIT folder (then give the common parent as root): ``<subject>/video/<sentence>/``
  holds extension-less JPEG frames and ``path`` is that *directory*; the audio is
  ``<subject>/audio/<sentence>.wav``. Head-rotation sequences (``head*``) have no speech and are
  left out. ``identity`` is the subject (the person whose video was altered); ``donor`` is the
  ``<donor>`` of the file name (the face pasted in).
* ``dfdm`` -- DFDM ``DFDM_crf*/**/id<a>_id<b>_<scene>_<tag>.mp4``. The tag-to-model mapping
  ``1faceswap 2lightweight 3iae 4dfaker 5dfl_h128`` -> ``dfdm-faceswap``, ``dfdm-lightweight``,
  ``dfdm-iae``, ``dfdm-dfaker``, ``dfdm-dfl-h128`` is read off the tag names and is
  **unconfirmed** by the dataset authors. Reals come from a ``Celeb-real/`` folder when present
  (``id<a>_<scene>.mp4``). ``identity`` is ``id<a>``, the person of the real video that was edited;
  ``donor`` is ``id<b>``, the face swapped in (Celeb-DF names the target video first).
* ``av1m`` -- AV-Deepfake1M: ``{train,val,test}_metadata.json`` (lists of objects) beside the
  ``train/ val/ test/`` folders; ``file`` is relative to its split folder (a path that already
  starts with the split folder, or sits at the root, is accepted too). Fields read: ``file``,
  ``split``, ``original``, ``modify_type`` (``real``, ``visual_modified``, ``audio_modified``,
  ``both_modified``; ``-`` spelt as ``_`` too), ``audio_model`` (the voice generator), and the
  segments ``fake_segments`` / ``visual_fake_segments`` / ``audio_fake_segments`` (also spelt
  ``*_periods``). Fakes are *partial*, like LAV-DF's: ``fake_segments`` (or, when absent, the
  union of the visual and audio segments) labels each window in the clip store. ``method`` keeps
  the generators: ``av1m-visual`` (lip-sync re-rendering), ``av1m-audio-<audio_model>``,
  ``av1m-audiovisual-<audio_model>``. ``identity`` is the VoxCeleb2 speaker id (the first
  ``id<digits>`` folder of ``original`` or ``file``), else the original's stem. Test videos
  without labels (``test_files.txt``) are not read. (Field names from the dataset's README;
  folder layout unconfirmed beyond it.)

See ``/work/shared/DATASETS.md`` for the facts behind each quirk.
"""
from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from .manifest import VIDEO_EXTS, AdapterResult, Collector, DatasetError, find_file, safe_relpath

#: DFDM file-name tag -> method (mapping read off the tags; unconfirmed by the authors).
DFDM_TAGS: dict[str, str] = {
    "1faceswap": "dfdm-faceswap", "2lightweight": "dfdm-lightweight", "3iae": "dfdm-iae",
    "4dfaker": "dfdm-dfaker", "5dfl_h128": "dfdm-dfl-h128",
}


# -- LAV-DF -----------------------------------------------------------------------------------
def read_lavdf(root: Path) -> AdapterResult:
    """LAV-DF: ``metadata.json`` / ``metadata.min.json`` + ``{train,dev,test}/NNNNNN.mp4``."""
    meta = find_file(root, ["metadata.json", "metadata.min.json"], depth=1)
    if meta is None:
        raise DatasetError(f"no metadata.json or metadata.min.json in {root}: give the LAV-DF "
                           "folder that holds it and train/ dev/ test/")
    base = meta.parent
    try:
        items = json.loads(meta.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{meta} is not valid JSON: {e}") from e
    if not isinstance(items, list):
        raise DatasetError(f"{meta} should hold a JSON list of objects, got {type(items).__name__}")
    col = Collector(base, "lavdf")
    for i, it in enumerate(items):
        if not isinstance(it, dict) or "file" not in it or "modify_video" not in it:
            hint = " (this looks like AV-Deepfake1M: use --dataset av1m)" \
                if isinstance(it, dict) and "visual_fake_segments" in it else ""
            col.problem(f"{meta.name}[{i}]", "bad_metadata",
                        "needs 'file', 'modify_video', 'modify_audio'" + hint)
            continue
        norm = col.check(str(it["file"]))
        if norm is None:
            continue
        v, a = int(bool(it.get("modify_video"))), int(bool(it.get("modify_audio")))
        method = {(0, 0): "real", (1, 0): "lavdf-visual", (0, 1): "lavdf-audio",
                  (1, 1): "lavdf-audiovisual"}[(v, a)]
        periods = [[float(s), float(e)] for s, e in (it.get("fake_periods") or [])] if v or a else []
        # identity = stem of the real video the fake was made from (the video itself for reals)
        original = PurePosixPath(str(it.get("original") or norm).replace("\\", "/")).stem
        col.add(path=norm, identity=original, method=method, video_fake=v, audio_fake=a,
                category=f"{'F' if v else 'R'}V{'F' if a else 'R'}A",
                fake_segments=json.dumps(periods), split=str(it.get("split", "")))
    return col.result()


# -- DeepfakeTIMIT (+ VidTIMIT) ----------------------------------------------------------------
_TIMIT_QUALITY = {"higher_quality": "dftimit-hq", "lower_quality": "dftimit-lq"}
_TIMIT_NAME = re.compile(r"^(?P<sentence>[^-]+)-video-(?P<donor>.+)$")


def read_dftimit(root: Path) -> AdapterResult:
    """DeepfakeTIMIT fakes (+ VidTIMIT reals where a ``vidtimit/`` folder is found)."""
    quality_dirs = _find_dirs(root, set(_TIMIT_QUALITY))
    vid_dirs = _find_dirs(root, {"vidtimit"})
    if not quality_dirs and not vid_dirs:
        raise DatasetError(f"no higher_quality/ or lower_quality/ folder in {root} (nor one "
                           "level below): give the DeepfakeTIMIT folder")
    col = Collector(root, "dftimit")
    for qdir in quality_dirs:
        method = _TIMIT_QUALITY[qdir.name.lower()]
        for video in sorted(p for p in qdir.rglob("*") if p.suffix.lower() in VIDEO_EXTS):
            rel = video.relative_to(root).as_posix()
            norm = col.check(rel)
            if norm is None:
                continue
            m = _TIMIT_NAME.match(video.stem)
            sentence = m["sentence"] if m else video.stem
            wav = video.with_name(sentence + ".wav")
            audio = col.check(wav.relative_to(root).as_posix()) if wav.exists() else ""
            if audio is None:
                continue
            col.add(path=norm, audio_path=audio, identity=video.parent.name, method=method,
                    video_fake=1, audio_fake=0, category="FVRA", donor=m["donor"] if m else "")
    for vdir in vid_dirs:
        for frames in sorted(p for p in vdir.glob("*/video/*") if p.is_dir()):
            if frames.name.lower().startswith("head"):
                continue                      # head-rotation sequences: no speech, no audio
            subject = frames.parent.parent.name
            norm = col.check(frames.relative_to(root).as_posix(), must_be_dir=True)
            if norm is None:
                continue
            wav = frames.parent.parent / "audio" / (frames.name + ".wav")
            if not wav.is_file():
                col.problem(norm, "missing", f"no audio file {wav.relative_to(root).as_posix()}")
                continue
            audio = col.check(wav.relative_to(root).as_posix())
            if audio is None:
                continue
            col.add(path=norm, audio_path=audio, identity=subject, method="real",
                    video_fake=0, audio_fake=0, category="RVRA")
    return col.result()


def _find_dirs(root: Path, names: set[str]) -> list[Path]:
    """Folders named (case-insensitively) one of ``names`` in ``root`` or one level below."""
    found = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in names]
    if not found:
        for sub in sorted(d for d in root.iterdir() if d.is_dir()):
            found += [d for d in sorted(sub.iterdir()) if d.is_dir() and d.name.lower() in names]
    return found


# -- DFDM ---------------------------------------------------------------------------------------
_DFDM_FAKE = re.compile(r"^id(?P<a>\d+)_id(?P<b>\d+)_(?P<scene>\d+)_(?P<tag>[0-9a-z_]+)$", re.I)
_CELEB_REAL = re.compile(r"^id(?P<a>\d+)_(?P<scene>\d+)$", re.I)


def read_dfdm(root: Path) -> AdapterResult:
    """DFDM fakes (``DFDM_crf*``) + Celeb-DF ``Celeb-real`` reals where present."""
    col = Collector(root, "dfdm")
    crf_dirs = [d for d in sorted(root.rglob("DFDM_crf*")) if d.is_dir()]
    if root.name.lower().startswith("dfdm_crf"):
        crf_dirs = [root]
    real_dirs = [d for d in sorted(root.rglob("Celeb-real")) if d.is_dir()]
    if not crf_dirs and not real_dirs:
        raise DatasetError(f"no DFDM_crf* folder in {root}: give the folder that holds "
                           "DFDM_crf0/ DFDM_crf10/ DFDM_crf23/ (and optionally Celeb-real/)")
    for d in crf_dirs:
        for video in sorted(d.rglob("*.mp4")):
            m = _DFDM_FAKE.match(video.stem)
            rel = video.relative_to(root).as_posix()
            if not m:
                col.problem(rel, "bad_metadata", "file name is not id<a>_id<b>_<scene>_<tag>")
                continue
            norm = col.check(rel)
            if norm is None:
                continue
            tag = m["tag"].lower()
            method = DFDM_TAGS.get(tag, "dfdm-" + re.sub(r"^\d+", "", tag).replace("_", "-"))
            col.add(path=norm, identity=f"id{int(m['a'])}", method=method,
                    video_fake=1, audio_fake=0, category="FVRA", donor=f"id{int(m['b'])}")
    for d in real_dirs:
        for video in sorted(d.glob("*.mp4")):
            m = _CELEB_REAL.match(video.stem)
            rel = video.relative_to(root).as_posix()
            norm = col.check(rel)
            if norm is None:
                continue
            identity = f"id{int(m['a'])}" if m else video.stem
            col.add(path=norm, identity=identity, method="real", video_fake=0, audio_fake=0,
                    category="RVRA")
    return col.result()


# -- AV-Deepfake1M --------------------------------------------------------------------------------
#: ``modify_type`` -> (video_fake, audio_fake, method stem)
_AV1M_TYPES: dict[str, tuple[int, int, str]] = {
    "real": (0, 0, "real"), "visual_modified": (1, 0, "av1m-visual"),
    "audio_modified": (0, 1, "av1m-audio"), "both_modified": (1, 1, "av1m-audiovisual"),
}
_VOX_ID = re.compile(r"^id\d+$")


def read_av1m(root: Path) -> AdapterResult:
    """AV-Deepfake1M: ``*_metadata.json`` + ``{train,val,test}/`` (see module docstring)."""
    metas = _av1m_metadata_files(root)
    if not metas:
        raise DatasetError(f"no train_metadata.json / val_metadata.json (or metadata.json) in "
                           f"{root} (nor one level below): give the AV-Deepfake1M folder")
    base = metas[0].parent
    col = Collector(base, "av1m")
    for meta in metas:
        try:
            items = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{meta} is not valid JSON: {e}") from e
        if not isinstance(items, list):
            raise DatasetError(f"{meta} should hold a JSON list of objects, "
                               f"got {type(items).__name__}")
        default_split = meta.name.split("_metadata")[0] if "_metadata" in meta.name else ""
        for i, it in enumerate(items):
            _av1m_item(col, base, meta.name, i, it, default_split)
    return col.result()


def _av1m_metadata_files(root: Path) -> list[Path]:
    """``<split>_metadata.json`` files (or one ``metadata.json``) in ``root`` or one level below."""
    for folder in [root] + sorted(d for d in root.iterdir() if d.is_dir()):
        found = sorted(p for p in folder.glob("*_metadata.json") if p.is_file())
        if not found and (folder / "metadata.json").is_file():
            found = [folder / "metadata.json"]
        if found:
            return found
    return []


def _segments(it: dict, key: str) -> list[list[float]] | None:
    """``<key>_segments`` or ``<key>_periods`` as ``[[start, end], ...]``; None when absent."""
    for name in (f"{key}_segments", f"{key}_periods"):
        if it.get(name) is not None:
            return [[float(s), float(e)] for s, e in it[name]]
    return None


def _av1m_item(col: Collector, base: Path, meta_name: str, i: int, it: object,
               default_split: str) -> None:
    """Add one AV-Deepfake1M metadata object to ``col`` (or a problem row)."""
    where = f"{meta_name}[{i}]"
    if not isinstance(it, dict) or "file" not in it:
        col.problem(where, "bad_metadata", "needs at least 'file'")
        return
    split = str(it.get("split") or default_split)
    rel = str(it["file"]).strip().replace("\\", "/")
    # the file is relative to its split folder; accept a path from the root as well
    cands = [rel] if rel.split("/")[0] == split or not split else [f"{split}/{rel}", rel]
    if any(safe_relpath(base, c)[0] is None for c in cands):
        col.check(rel)                          # records the unsafe_path problem
        return
    hit = next((c for c in cands if (base / c).is_file()), cands[0])
    norm = col.check(hit)
    if norm is None:
        return
    visual, audio, overall = (_segments(it, k) for k in ("visual_fake", "audio_fake", "fake"))
    mtype = str(it.get("modify_type", "")).strip().lower().replace("-", "_")
    if mtype in _AV1M_TYPES:
        v, a, stem = _AV1M_TYPES[mtype]
    elif mtype == "" and (visual is not None or audio is not None):
        v, a = int(bool(visual)), int(bool(audio))
        stem = _AV1M_TYPES[{(0, 0): "real", (1, 0): "visual_modified", (0, 1): "audio_modified",
                            (1, 1): "both_modified"}[(v, a)]][2]
    else:
        col.problem(norm, "bad_metadata", f"{where}: modify_type {it.get('modify_type')!r} is "
                                          f"not one of {sorted(_AV1M_TYPES)}")
        return
    if overall is None:                          # union of the per-modality segments
        overall = sorted((visual or []) + (audio or []))
    # a fake without segments is labelled fake as a whole (as LAV-DF's are)
    voice = re.sub(r"[^0-9a-z]+", "-", str(it.get("audio_model") or "").strip().lower()).strip("-")
    method = f"{stem}-{voice}" if a and voice else stem
    col.add(path=norm, identity=_av1m_identity(it, norm), method=method, video_fake=v,
            audio_fake=a, category=f"{'F' if v else 'R'}V{'F' if a else 'R'}A",
            fake_segments=json.dumps(overall if (v or a) else []), split=split)


def _av1m_identity(it: dict, norm: str) -> str:
    """The VoxCeleb2 speaker id (first ``id<digits>`` folder of ``original``, else of ``file``),
    else the stem of the original video (the video itself for reals)."""
    original = str(it.get("original") or "").replace("\\", "/")
    for path in (original, str(it["file"]).replace("\\", "/"), norm):
        hit = next((p for p in path.split("/") if _VOX_ID.match(p)), None)
        if hit:
            return hit
    return PurePosixPath(original or norm).stem


__all__ = ["DFDM_TAGS", "read_lavdf", "read_dftimit", "read_dfdm", "read_av1m"]

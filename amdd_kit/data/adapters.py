"""Dataset adapters: a dataset folder on disk -> one manifest row per source video.

Every adapter returns an :class:`AdapterResult` with the manifest of ``docs/contracts.md``
(columns :data:`MANIFEST_COLUMNS`) and a ``problems`` table (``path, reason, detail``) of the
rows that cannot be used. A missing file or a suspicious path is a *problem row*, never a
crash: the rest of the dataset still goes through.

Supported layouts (see ``/work/shared/DATASETS.md`` for the facts behind each quirk):

* ``fakeavceleb`` -- FakeAVCeleb v1.2 ``meta_data.csv`` + the four ``RealVideo-RealAudio`` ...
  folders. Handles the trailing comma of the header (pandas names the 10th column
  ``Unnamed: 9``; it holds the *directory*, ``path`` holds the *file name*), a leading
  ``FakeAVCeleb/`` in that directory, double-nested unzips (``FakeAVCeleb_v1.2/FakeAVCeleb_v1.2``:
  the root may be given up to two levels above ``meta_data.csv``), spaces and parentheses in
  folder names, and file names that repeat across folders (we always key on directory + file).
  **Duplicates**: the real CSV names 22 physical files twice under two different methods. The
  clip store keys on the physical file, and one input cannot carry two attribution targets, so
  we keep the *first* row of each physical file (CSV order) and report the others as problems
  with reason ``duplicate`` (the detail names both methods).
  ``identity`` is the ``source`` id: the split key that keeps a real video and its fakes together.
  ``donor`` is ``target1`` (the person whose face was swapped in; ``-`` in the CSV becomes "").
  A row whose directory is absolute (``/...``) is refused as ``unsafe_path``.
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
* ``csv`` -- a generic CSV (``path,label,method[,identity][,audio_path]`` and optionally
  ``video_fake, audio_fake, category, fake_segments, split, donor``). ``root`` is the CSV file, or a
  folder with exactly one ``*.csv``; paths are relative to the CSV's folder.

Paths are checked before use: absolute paths, ``..`` components and symlinks that resolve
outside the root become ``unsafe_path`` problems.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

import pandas as pd

log = logging.getLogger(__name__)

#: Manifest columns, in order (docs/contracts.md).
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "audio_path", "dataset", "identity", "label", "video_fake", "audio_fake",
    "method", "category", "fake_segments", "split", "donor",
)
PROBLEM_COLUMNS: tuple[str, ...] = ("path", "reason", "detail")

#: FakeAVCeleb ``type`` folders <-> categories.
FAKEAVCELEB_TYPES: dict[str, str] = {
    "RealVideo-RealAudio": "RVRA", "RealVideo-FakeAudio": "RVFA",
    "FakeVideo-RealAudio": "FVRA", "FakeVideo-FakeAudio": "FVFA",
}
_CATEGORY_LETTERS = {"A": "RVRA", "B": "RVFA", "C": "FVRA", "D": "FVFA"}

#: DFDM file-name tag -> method (mapping read off the tags; unconfirmed by the authors).
DFDM_TAGS: dict[str, str] = {
    "1faceswap": "dfdm-faceswap", "2lightweight": "dfdm-lightweight", "3iae": "dfdm-iae",
    "4dfaker": "dfdm-dfaker", "5dfl_h128": "dfdm-dfl-h128",
}

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")


class DatasetError(ValueError):
    """The dataset root cannot be read at all (no metadata, wrong folder)."""


@dataclass
class AdapterResult:
    """What an adapter returns.

    Attributes:
        root: resolved dataset root (after un-nesting); every ``path`` is relative to it.
        manifest: one row per usable source video, columns :data:`MANIFEST_COLUMNS`.
        problems: rows that were left out: ``path, reason, detail``
            (reasons ``missing``, ``unsafe_path``, ``duplicate``, ``bad_metadata``).
    """

    root: Path
    manifest: pd.DataFrame
    problems: pd.DataFrame

    def __repr__(self) -> str:
        return (f"AdapterResult(root={str(self.root)!r}, videos={len(self.manifest)}, "
                f"problems={len(self.problems)})")


# -- path safety ---------------------------------------------------------------------------
def safe_relpath(root: Path, rel: str) -> tuple[str | None, str]:
    """Check that ``rel`` names something inside ``root``.

    Returns ``(normalised POSIX path, "")`` when safe, else ``(None, why)``. Rejects absolute
    paths (POSIX or Windows drive), ``..`` components and symlinks resolving outside ``root``.
    A path that does not exist is *safe* here (the caller reports it as ``missing``).
    """
    text = str(rel).strip().replace("\\", "/")
    if not text:
        return None, "empty path"
    if text.startswith("/") or re.match(r"^[A-Za-z]:/", text):
        return None, "absolute path"
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        return None, "path contains '..'"
    norm = "/".join(parts)
    full = root / norm
    if full.exists() or full.is_symlink():
        try:
            full.resolve(strict=False).relative_to(root.resolve())
        except ValueError:
            return None, "resolves outside the dataset root (symlink?)"
    return norm, ""


class _Collector:
    """Builds the manifest and the problems table row by row."""

    def __init__(self, root: Path, dataset: str):
        self.root, self.dataset = root, dataset
        self.rows: list[dict] = []
        self.problems: list[dict] = []

    def problem(self, path: str, reason: str, detail: str = "") -> None:
        self.problems.append({"path": str(path), "reason": reason, "detail": detail})

    def check(self, rel: str, must_be_dir: bool = False) -> str | None:
        """Return the safe relative path when it exists; otherwise log a problem and None."""
        norm, why = safe_relpath(self.root, rel)
        if norm is None:
            self.problem(rel, "unsafe_path", why)
            return None
        full = self.root / norm
        ok = full.is_dir() if must_be_dir else full.is_file()
        if not ok:
            self.problem(norm, "missing", f"not found under {self.root}")
            return None
        return norm

    def add(self, **row) -> None:
        base = {"audio_path": "", "dataset": self.dataset, "category": "",
                "fake_segments": "[]", "split": "", "donor": ""}
        base.update(row)
        base["label"] = int(bool(base.get("video_fake")) or bool(base.get("audio_fake"))) \
            if "label" not in row else int(row["label"])
        self.rows.append(base)

    def result(self) -> AdapterResult:
        man = pd.DataFrame(self.rows, columns=list(MANIFEST_COLUMNS))
        for c in ("label", "video_fake", "audio_fake"):
            man[c] = man[c].astype("int64")
        for c in MANIFEST_COLUMNS:
            if c not in ("label", "video_fake", "audio_fake"):
                man[c] = man[c].fillna("").astype(str)
        probs = pd.DataFrame(self.problems, columns=list(PROBLEM_COLUMNS)).astype(str)
        if len(probs):
            log.warning("%s: %d rows left out (%s)", self.dataset, len(probs),
                        probs["reason"].value_counts().to_dict())
        return AdapterResult(self.root, man.reset_index(drop=True), probs)


def _find_file(root: Path, names: Iterable[str], depth: int = 2) -> Path | None:
    """The first of ``names`` found in ``root`` or up to ``depth`` folder levels below it."""
    names = list(names)
    levels = [[root]]
    for _ in range(depth):
        nxt = [d for parent in levels[-1] for d in sorted(parent.iterdir()) if d.is_dir()
               and not d.name.startswith(".")] if levels[-1] else []
        levels.append(nxt)
    for level in levels:
        for name in names:
            hits = [d / name for d in level if (d / name).is_file()]
            if len(hits) > 1:
                raise DatasetError(f"several {name} files under {root}: "
                                   f"{[str(h) for h in hits]}; point --root at one of them")
            if hits:
                return hits[0]
    return None


# -- FakeAVCeleb ------------------------------------------------------------------------------
def read_fakeavceleb(root: Path) -> AdapterResult:
    """FakeAVCeleb v1.2 (see module docstring for the quirks handled)."""
    meta = _find_file(root, ["meta_data.csv"])
    if meta is None:
        raise DatasetError(f"no meta_data.csv in {root} (nor one or two folders below): give the "
                           "FakeAVCeleb folder that holds meta_data.csv and RealVideo-RealAudio/")
    base = meta.parent
    df = pd.read_csv(meta, dtype=str, keep_default_na=False, skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    needed = {"source", "method", "path"}
    if not needed <= set(df.columns):
        raise DatasetError(f"{meta} lacks columns {sorted(needed - set(df.columns))}; "
                           f"found {list(df.columns)}")
    dir_col = next((c for c in df.columns if c.startswith("Unnamed") or c == ""), None)
    col = _Collector(base, "fakeavceleb")
    seen: dict[str, str] = {}
    for i, r in df.iterrows():
        rel = _fakeavceleb_relpath(r, dir_col)
        if rel is None:
            col.problem(f"meta_data.csv row {i + 2}", "bad_metadata",
                        "no directory column and no type/race/gender to rebuild it")
            continue
        norm = col.check(rel)
        if norm is None:
            continue
        method = r["method"].strip()
        if norm in seen:
            col.problem(norm, "duplicate", f"listed as {seen[norm]!r} and again as {method!r} "
                                           f"(meta_data.csv row {i + 2}); kept the first")
            continue
        seen[norm] = method
        cat = _fakeavceleb_category(r, norm)
        if not cat:
            col.problem(norm, "bad_metadata", "cannot tell real/fake: no category or type")
            continue
        donor = r.get("target1", "").strip()
        col.add(path=norm, identity=r["source"].strip(), method=method, category=cat,
                video_fake=int(cat[0] == "F"), audio_fake=int(cat[2] == "F"),
                donor="" if donor in ("-", "") else donor)
    return col.result()


def _fakeavceleb_relpath(r: pd.Series, dir_col: str | None) -> str | None:
    name = r["path"].strip()
    directory = r[dir_col].strip() if dir_col else ""
    if not directory and "/" in name:          # some copies put the whole path in `path`
        directory, _, name = name.rpartition("/")
    if not directory:                           # rebuild from the other columns
        parts = [r.get(c, "").strip() for c in ("type", "race", "gender", "source")]
        if not all(parts):
            return None
        directory = "/".join(parts)
    directory = directory.replace("\\", "/")
    if directory.startswith("/") or re.match(r"^[A-Za-z]:/", directory):
        return directory.rstrip("/") + "/" + name   # absolute: safe_relpath refuses it
    dparts = [p for p in directory.split("/") if p]
    # drop a leading "FakeAVCeleb/" (or "FakeAVCeleb_v1.2/") before the type folder
    if len(dparts) > 1 and dparts[0] not in FAKEAVCELEB_TYPES and dparts[1] in FAKEAVCELEB_TYPES:
        dparts = dparts[1:]
    return "/".join(dparts + [name])


def _fakeavceleb_category(r: pd.Series, rel: str) -> str:
    cat = r.get("category", "").strip()
    if cat in _CATEGORY_LETTERS:
        return _CATEGORY_LETTERS[cat]
    if cat in FAKEAVCELEB_TYPES.values():
        return cat
    for key in (r.get("type", "").strip(), rel.split("/")[0]):
        if key in FAKEAVCELEB_TYPES:
            return FAKEAVCELEB_TYPES[key]
    return ""


# -- LAV-DF -----------------------------------------------------------------------------------
def read_lavdf(root: Path) -> AdapterResult:
    """LAV-DF: ``metadata.json`` / ``metadata.min.json`` + ``{train,dev,test}/NNNNNN.mp4``."""
    meta = _find_file(root, ["metadata.json", "metadata.min.json"], depth=1)
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
    col = _Collector(base, "lavdf")
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
    col = _Collector(root, "dftimit")
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
    col = _Collector(root, "dfdm")
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
    col = _Collector(base, "av1m")
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


def _av1m_item(col: _Collector, base: Path, meta_name: str, i: int, it: object,
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


# -- generic CSV ---------------------------------------------------------------------------------
_LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "fake": 1, "false": 0, "true": 1}


def read_csv_manifest(root: Path) -> AdapterResult:
    """Generic CSV: ``path,label,method[,identity][,audio_path]`` (+ optional extra columns)."""
    if root.is_file():
        csv = root
    else:
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise DatasetError(f"expected exactly one *.csv in {root} (columns path,label,method"
                               f"[,identity][,audio_path]), found {len(found)}; or give the file")
        csv = found[0]
    df = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = {"path", "label", "method"} - set(df.columns)
    if missing:
        raise DatasetError(f"{csv} lacks columns {sorted(missing)} (needs path,label,method)")
    if "identity" not in df.columns:
        log.warning("%s has no identity column: every video is its own identity, so splits "
                    "cannot keep a real video and its fakes together", csv)
    col = _Collector(csv.parent, "csv")
    for i, r in df.iterrows():
        label = _LABEL_WORDS.get(r["label"].strip().lower())
        if label is None:
            col.problem(r["path"], "bad_metadata", f"row {i + 2}: label {r['label']!r} is not 0/1")
            continue
        norm = col.check(r["path"])
        if norm is None:
            continue
        audio = r.get("audio_path", "").strip()
        if audio:
            audio = col.check(audio)
            if audio is None:
                continue
        vf = _LABEL_WORDS.get(r.get("video_fake", "").strip().lower(), label)
        af = _LABEL_WORDS.get(r.get("audio_fake", "").strip().lower(), label)
        col.add(path=norm, audio_path=audio, identity=r.get("identity", "").strip() or norm,
                label=label, video_fake=vf, audio_fake=af, method=r["method"].strip(),
                category=r.get("category", "").strip(),
                fake_segments=r.get("fake_segments", "").strip() or "[]",
                split=r.get("split", "").strip(), donor=r.get("donor", "").strip())
    return col.result()


READERS: dict[str, Callable[[Path], AdapterResult]] = {
    "fakeavceleb": read_fakeavceleb, "lavdf": read_lavdf, "dftimit": read_dftimit,
    "dfdm": read_dfdm, "av1m": read_av1m, "csv": read_csv_manifest,
}


def read_dataset(dataset: str, root: str | Path) -> AdapterResult:
    """Read a dataset folder into a manifest (one row per source video).

    Args:
        dataset: one of ``fakeavceleb, lavdf, dftimit, dfdm, av1m, csv``.
        root: the dataset folder (FakeAVCeleb: the folder with ``meta_data.csv`` or up to two
            levels above it; ``csv``: the CSV file or its folder).

    Raises:
        ValueError: unknown ``dataset`` (the message lists the choices).
        FileNotFoundError: ``root`` does not exist.
        DatasetError: the root holds no metadata this adapter can read (names the file expected).
    """
    if dataset not in READERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(READERS)}")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root {str(root)!r} does not exist")
    if not root.is_dir() and dataset != "csv":
        raise DatasetError(f"dataset root {str(root)!r} is not a folder")
    return READERS[dataset](root.resolve() if root.is_dir() else root.resolve())

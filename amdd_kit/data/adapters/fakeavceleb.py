"""FakeAVCeleb v1.2, the kit's training corpus (and the layout of its synthetic corpus).

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

See ``/work/shared/DATASETS.md`` for the facts behind each quirk.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .manifest import AdapterResult, Collector, DatasetError, find_file

#: FakeAVCeleb ``type`` folders <-> categories.
FAKEAVCELEB_TYPES: dict[str, str] = {
    "RealVideo-RealAudio": "RVRA", "RealVideo-FakeAudio": "RVFA",
    "FakeVideo-RealAudio": "FVRA", "FakeVideo-FakeAudio": "FVFA",
}
_CATEGORY_LETTERS = {"A": "RVRA", "B": "RVFA", "C": "FVRA", "D": "FVFA"}


def read_fakeavceleb(root: Path) -> AdapterResult:
    """FakeAVCeleb v1.2 (see the module docstring for the quirks handled)."""
    meta = find_file(root, ["meta_data.csv"])
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
    col = Collector(base, "fakeavceleb")
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


__all__ = ["FAKEAVCELEB_TYPES", "read_fakeavceleb"]

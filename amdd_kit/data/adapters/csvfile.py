"""Your own dataset, listed in a CSV file.

* ``csv`` -- a generic CSV (``path,label,method[,identity][,audio_path]`` and optionally
  ``video_fake, audio_fake, category, fake_segments, split, donor``). ``root`` is the CSV file, or a
  folder with exactly one ``*.csv``; paths are relative to the CSV's folder.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from .manifest import AdapterResult, Collector, DatasetError

log = logging.getLogger(__name__)

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
    col = Collector(csv.parent, "csv")
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


__all__ = ["read_csv_manifest"]

"""The manifest every dataset adapter returns, and the tools the adapters share to build it.

Every adapter returns an :class:`AdapterResult` with the manifest of ``docs/contracts.md``
(columns :data:`MANIFEST_COLUMNS`) and a ``problems`` table (``path, reason, detail``) of the
rows that cannot be used. A missing file or a suspicious path is a *problem row*, never a
crash: the rest of the dataset still goes through. Paths are checked before use
(:func:`safe_relpath`): absolute paths, ``..`` components and symlinks that resolve outside the
root become ``unsafe_path`` problems.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

import pandas as pd

log = logging.getLogger(__name__)

#: Manifest columns, in order (docs/contracts.md).
MANIFEST_COLUMNS: tuple[str, ...] = (
    "path", "audio_path", "dataset", "identity", "label", "video_fake", "audio_fake",
    "method", "category", "fake_segments", "split", "donor",
)
PROBLEM_COLUMNS: tuple[str, ...] = ("path", "reason", "detail")

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


class Collector:
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


def find_file(root: Path, names: Iterable[str], depth: int = 2) -> Path | None:
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


__all__ = ["MANIFEST_COLUMNS", "PROBLEM_COLUMNS", "VIDEO_EXTS", "DatasetError", "AdapterResult",
           "safe_relpath", "Collector", "find_file"]

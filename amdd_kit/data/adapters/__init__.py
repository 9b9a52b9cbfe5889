"""Dataset adapters: a dataset folder on disk -> one manifest row per source video.

:func:`read_dataset` reads any supported layout; each layout lives in its own module, all
building the manifest of :mod:`~amdd_kit.data.adapters.manifest` (columns, problem rows, path
safety):

* ``fakeavceleb`` -- :mod:`~amdd_kit.data.adapters.fakeavceleb`, the training corpus;
* ``lavdf``, ``dftimit``, ``dfdm``, ``av1m`` -- :mod:`~amdd_kit.data.adapters.heldout`, the
  held-out sets (LAV-DF, DeepfakeTIMIT + VidTIMIT, DFDM, AV-Deepfake1M);
* ``csv`` -- :mod:`~amdd_kit.data.adapters.csvfile`, your own dataset as a CSV file.

See ``/work/shared/DATASETS.md`` for the facts behind each layout's quirks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .csvfile import read_csv_manifest
from .fakeavceleb import read_fakeavceleb
from .heldout import read_av1m, read_dfdm, read_dftimit, read_lavdf
from .manifest import AdapterResult, DatasetError

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


__all__ = ["READERS", "read_dataset"]

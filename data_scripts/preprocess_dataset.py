#!/usr/bin/env python
"""Preprocess a dataset into a clip store (thin wrapper over amdd_kit.data.preprocess).

    python data_scripts/preprocess_dataset.py --dataset fakeavceleb --root /data/FakeAVCeleb_v1.2 \
        --out data/stores/fakeavceleb-tiny --config tiny --workers 4

Re-running the same command resumes an interrupted run. Same as ``amdd-kit preprocess``.
Exit code 2 with a one-line reason when the input cannot be used.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amdd_kit.config import get_config  # noqa: E402
from amdd_kit.data.adapters import READERS  # noqa: E402
from amdd_kit.data.preprocess import preprocess_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=sorted(READERS))
    p.add_argument("--root", required=True, help="dataset folder (FakeAVCeleb: the folder with "
                                                  "meta_data.csv or one level above)")
    p.add_argument("--out", required=True, help="clip store folder")
    p.add_argument("--config", default="tiny", help="tiny or paper")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="only the first N videos")
    p.add_argument("--set", action="append", default=[], metavar="data.FIELD=VALUE",
                   help="override a config field, e.g. data.trim_silence=true")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        sets = dict(s.split("=", 1) for s in a.set)
        cfg = get_config(a.config, sets)
        summary = preprocess_dataset(a.dataset, a.root, a.out, cfg.data, workers=a.workers,
                                     progress=not a.quiet, limit=a.limit)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"preprocess_dataset: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

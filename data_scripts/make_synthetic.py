#!/usr/bin/env python
"""Render the synthetic audio-visual corpus (thin wrapper over amdd_kit.data.synthetic.make_corpus).

    python data_scripts/make_synthetic.py --out data/synthetic --size tiny --workers 2

Writes DIR/fakeavceleb, DIR/lavdf, DIR/dftimit, DIR/dfdm and DIR/.complete.json.
Exit code 0 on success, 2 on bad arguments, 1 when some videos failed (re-run to resume).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from amdd_kit.data.synthetic import SIZES, make_corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shortcut", default=None, choices=["leading-silence"],
                    help="reproduce FakeAVCeleb's leading-silence shortcut (off by default)")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if a.workers < 1:
        print("make_synthetic: --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        roots = make_corpus(a.out, size=a.size, seed=a.seed, shortcut=a.shortcut,
                            workers=a.workers, progress=not a.quiet)
    except ValueError as e:
        print(f"make_synthetic: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"make_synthetic: {e}", file=sys.stderr)
        return 1
    for name, root in roots.items():
        print(f"{name}\t{root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

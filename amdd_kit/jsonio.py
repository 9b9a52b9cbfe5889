"""JSON output that is always valid: NaN/inf -> null, numpy scalars -> Python numbers,
dataclasses -> dicts."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps`` accepts and that stays valid JSON (no NaN)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``jsonable(obj)`` to ``path``, indented, with a trailing newline."""
    path = Path(path)
    path.write_text(json.dumps(jsonable(obj), indent=2) + "\n")
    return path


def as_float(x: Any) -> float:
    """``float(x)``, or NaN for ``None`` and anything else that is not a number (JSON nulls,
    missing metrics)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")

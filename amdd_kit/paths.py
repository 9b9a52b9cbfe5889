"""Project-relative paths that mean the same folder wherever a notebook runs.

A notebook's ``run_dir = "runs/demo"`` must name the same folder when the notebook is opened in
JupyterLab (the kernel starts in ``notebooks/``), executed by papermill from the repository root
or from anywhere else, or run by ``amdd-kit series``. :func:`resolve` decides like this:

1. An absolute path (after ``~`` expansion) is used as it is.
2. A relative path is joined to the **project root**, found by :func:`project_root`:

   a. ``$AMDD_PROJECT_ROOT`` when set (tests and schedulers point a lab at another tree this
      way);
   b. else the nearest folder at or above the current directory that holds both
      ``pyproject.toml`` and ``notebooks/`` (the repository checkout);
   c. else the checkout this package was installed from (an editable install: the folder above
      ``amdd_kit/`` when it holds ``pyproject.toml`` and ``notebooks/``);
   d. else the current directory.

So ``runs/demo`` is ``<repo>/runs/demo`` from ``notebooks/``, from the repository root and from
``/tmp`` alike. :func:`require` raises a ``FileNotFoundError`` that names the absolute path it
looked at, how the root was chosen, and the step that creates the missing file.

:func:`tool_caches` is the one place that gives numba (umap's JIT) and matplotlib writable cache
folders when the environment names none.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_ROOT", "TOOL_CACHES", "project_root", "root_reason", "resolve", "require",
           "tool_caches"]

#: Environment variable that fixes the project root (takes precedence over the search).
ENV_ROOT = "AMDD_PROJECT_ROOT"


def _is_project(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir()


def _find_root(start: Path | None = None) -> tuple[Path, str]:
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve(), f"${ENV_ROOT}"
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if _is_project(folder):
            return folder, f"the nearest folder at or above {here} holding pyproject.toml and notebooks/"
    checkout = Path(__file__).resolve().parents[1]
    if _is_project(checkout):
        return checkout, "the checkout amdd_kit was installed from"
    return here, "the current directory (no project root found)"


def project_root(start: str | Path | None = None) -> Path:
    """The folder relative paths are resolved against (see the module docstring).

    ``start``: where the upward search begins (default: the current directory).
    """
    return _find_root(Path(start) if start is not None else None)[0]


def root_reason(start: str | Path | None = None) -> str:
    """How :func:`project_root` chose its folder, in words (for messages)."""
    root, why = _find_root(Path(start) if start is not None else None)
    return f"{root} ({why})"


def resolve(path: str | Path, start: str | Path | None = None) -> Path:
    """``path`` as an absolute path: as it is when absolute, else under :func:`project_root`."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return project_root(start) / p


def require(path: str | Path, next_step: str) -> Path:
    """``path`` resolved; raise ``FileNotFoundError`` naming it and ``next_step`` if missing."""
    p = resolve(path)
    if not p.exists():
        raise FileNotFoundError(
            f"{p} not found (relative paths are resolved against the project root "
            f"{root_reason()}): {next_step}")
    return p


#: Environment variable -> its folder under the kit's cache folder.
TOOL_CACHES = {"NUMBA_CACHE_DIR": "numba", "MPLCONFIGDIR": "matplotlib"}


def tool_caches() -> list[str]:
    """Point each unset variable of :data:`TOOL_CACHES` at a writable folder and return the
    names it set (set ones are left alone: ``make`` sets both to the checkout's ``.cache/``).

    The folder is ``$XDG_CACHE_HOME/amdd-kit/<tool>`` (default ``~/.cache/amdd-kit/<tool>``), or
    ``<temp>/amdd-kit-<tool>`` where that cannot be created. Call it before ``import umap`` or
    ``import matplotlib`` (they read the variables once), or before starting kernels.
    """
    import tempfile

    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "amdd-kit"
    added = []
    for var, tool in TOOL_CACHES.items():
        if os.environ.get(var):
            continue
        folder = base / tool
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = Path(tempfile.gettempdir()) / f"amdd-kit-{tool}"
            folder.mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(folder)
        added.append(var)
    return added

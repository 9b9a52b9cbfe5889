"""The kit's foundation: packaging, environment.yml, config round-trips, CLI contract,
notebook hygiene."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from amdd_kit.config import Config, get_config

REPO = Path(__file__).resolve().parents[1]
CLI_COMMANDS = ("make-data", "preprocess", "train", "evaluate", "predict", "series", "report",
                "lab")


def _req_name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_deps() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["test"]
    return {_req_name(d): d.replace(" ", "") for d in deps}


def _env_yml_deps() -> dict[str, str]:
    import yaml
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    items: list[str] = []
    for dep in env["dependencies"]:
        items.extend(dep["pip"] if isinstance(dep, dict) else [dep])
    out = {}
    for item in items:
        if item in ("pip", "-e .") or item.startswith("python="):
            continue
        out[_req_name(item)] = item.replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_deps(), _env_yml_deps()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; " \
                                f"only in environment.yml: {set(env) - set(py)}"
    for name, spec in py.items():
        assert spec.lower() == env[name].lower(), f"{name}: {spec} vs {env[name]}"


def test_torch_trio_pinned_exactly():
    py = _pyproject_deps()
    assert py["torch"] == "torch==2.9.1"
    assert py["torchvision"] == "torchvision==0.24.1"
    assert py["torchaudio"] == "torchaudio==2.9.1"
    for pkg in ("jupyterlab", "ipywidgets", "fastai", "librosa", "umap-learn", "plotly",
                "papermill", "av", "opencv-python-headless", "anywidget", "pyarrow",
                "ipykernel", "pytest"):
        assert pkg in py, pkg
    assert "<5" in py["opencv-python-headless"]


def test_licence_is_an_spdx_string_setuptools_reads_without_a_deprecation():
    """``license = { text = ... }`` makes setuptools >= 77 print a deprecation notice during
    ``make setup``; the SPDX string needs setuptools >= 77 in the build environment."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["license"] == "MIT"
    setuptools = [r for r in data["build-system"]["requires"] if _req_name(r) == "setuptools"]
    assert setuptools and re.search(r">=\s*(\d+)", setuptools[0]), setuptools
    assert int(re.search(r">=\s*(\d+)", setuptools[0]).group(1)) >= 77, setuptools


@pytest.mark.parametrize("name", ["tiny", "paper"])
def test_config_roundtrip(name, tmp_path):
    cfg = get_config(name)
    cfg.to_json(tmp_path / "c.json")
    back = Config.load(tmp_path / "c.json")
    assert back == cfg
    assert back.hash() == cfg.hash()


def test_config_windows_align():
    for name in ("tiny", "paper"):
        d = get_config(name).data
        # one video frame at 25 fps spans exactly 4 mel frames of hop 10 ms
        assert d.mel_frames == d.n_frames * d.frame_stride * 4
    paper = get_config("paper")
    assert paper.model.visual_backbone == "resnet50" and paper.data.image_size == 224


def test_config_override_types_and_errors():
    cfg = get_config("tiny", {"train.epochs": "3", "loss.w_cmffc": "0", "model.pretrained": "no",
                              "train.holdout_methods": "fsgan,rtvc"})
    assert cfg.train.epochs == 3 and cfg.loss.w_cmffc == 0.0 and cfg.model.pretrained is False
    assert cfg.train.holdout_methods == ("fsgan", "rtvc")
    with pytest.raises(ValueError, match="unknown field"):
        get_config("tiny", {"train.epoch": 3})
    with pytest.raises(ValueError, match="unknown config"):
        get_config("huge")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "amdd_kit.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_cli_help_lists_contract_commands():
    r = _cli("--help")
    assert r.returncode == 0
    for cmd in CLI_COMMANDS:
        assert cmd in r.stdout


def test_cli_bad_input_exits_2_with_one_line_reason(tmp_path):
    r = _cli("preprocess", "--dataset", "fakeavceleb", "--root", str(tmp_path / "nope"),
             "--out", str(tmp_path / "store"))
    assert r.returncode == 2
    assert "not a directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _cli("train", "--store", str(tmp_path), "--out", str(tmp_path / "run"), "--set", "x")
    assert r.returncode == 2 and "key=value" in r.stderr
    r = _cli("frobnicate")
    assert r.returncode == 2


def _notebooks():
    return sorted((REPO / "notebooks").glob("*.ipynb"))


def test_series_notebooks_exist_in_order():
    names = [p.name for p in _notebooks()]
    assert names, "no notebooks"
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(1, len(numbers) + 1)), names


@pytest.mark.parametrize("nb", _notebooks(), ids=lambda p: p.name)
def test_notebook_hygiene(nb):
    data = json.loads(nb.read_text())
    cells = data["cells"]
    # nbformat 4.5 with a unique id per cell: without ids every read warns
    # (MissingIDFieldWarning, a hard error in future nbformat versions)
    assert (data["nbformat"], data["nbformat_minor"]) >= (4, 5), "save as nbformat 4.5"
    ids = [c.get("id") for c in cells]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs its own id"
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs"), "committed with outputs"
            assert c.get("execution_count") is None, "committed with execution counts"
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"], "starts with a title"
    # JupyterLab picks the kernel from the metadata: the project's kernel (make setup registers
    # it), not "python3", which is another interpreter under a system-wide Jupyter
    assert data["metadata"]["kernelspec"]["name"] == "amdd-kit", data["metadata"]["kernelspec"]
    src = "".join(params[0]["source"])
    assert "run_dir" in src, "every notebook reads/writes its run_dir"
    # papermill must be able to read (and so inject) every parameter: it skips a line whose
    # comment holds another '=', which series.declared_parameters refuses by name
    from amdd_kit.series import declared_parameters
    names = declared_parameters(nb)
    assigned = re.findall(r"^(\w+)\s*=", src, re.M)
    assert set(assigned) <= set(names), set(assigned) - set(names)
    # teaching: a markdown cell before each step (no two code cells in a row, params aside)
    kinds = [c["cell_type"] for c in cells]
    runs = max((len(m.group()) for m in re.finditer("c+", "".join(k[0] for k in kinds))),
               default=0)
    assert runs <= 3, "too many code cells without prose between them"


def test_one_json_helper_takes_dataclasses_nan_and_numpy():
    """``jsonio.jsonable`` is the kit's one JSON helper (the CLI's own copy is gone): a
    dataclass becomes a dict (what ``cli._jsonable`` did), NaN becomes null, numpy numbers
    plain ones."""
    import dataclasses

    import numpy as np

    import amdd_kit.cli as cli
    from amdd_kit.jsonio import jsonable

    @dataclasses.dataclass
    class Summary:
        clips: int
        seconds: float
        skipped: dict

    out = jsonable(Summary(np.int64(3), float("nan"), {"no_face": np.float32(2.0)}))
    assert out == {"clips": 3, "seconds": None, "skipped": {"no_face": 2.0}}
    assert json.loads(json.dumps(out)) == out and type(out["clips"]) is int
    assert jsonable(Summary) is Summary            # a dataclass type is not an instance
    assert not hasattr(cli, "_jsonable")


def test_one_cache_folder_setup_for_numba_and_matplotlib(tmp_path, monkeypatch):
    """``paths.tool_caches`` is the one place the kit points numba and matplotlib at writable
    folders (geometry before ``import umap``, the series runner for its kernels); a folder the
    environment already names is left alone, and the runner unsets what it set."""
    import os

    from amdd_kit import paths, series

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mine"))
    assert paths.tool_caches() == ["NUMBA_CACHE_DIR"]
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "amdd-kit" / "numba")
    assert (tmp_path / "amdd-kit" / "numba").is_dir()
    assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "mine")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.delenv("MPLCONFIGDIR")
    with series._kernel_env():
        assert os.environ["MPLCONFIGDIR"] == str(tmp_path / "amdd-kit" / "matplotlib")
        assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "amdd-kit" / "numba")
    assert "MPLCONFIGDIR" not in os.environ and "NUMBA_CACHE_DIR" not in os.environ
    src = {m: (REPO / "amdd_kit" / f"{m}.py").read_text() for m in ("geometry", "series")}
    assert all("os.environ[" not in text for text in src.values())


def test_importing_the_kit_makes_waiting_openmp_threads_sleep():
    """OMP_WAIT_POLICY=PASSIVE is set on import, before torch loads OpenMP (a busy core slowed
    spinning threads 2.6x); a value the user set is kept."""
    code = ("import os, amdd_kit, torch; print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split()[-1] == "PASSIVE", out.stderr[-2000:]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True)
    assert out.stdout.split()[-1] == "ACTIVE", out.stderr[-2000:]


def _kit_imports(path: Path) -> set[str]:
    """The ``amdd_kit`` modules one source file imports (relative imports resolved, lazy ones
    inside functions included), e.g. ``{"amdd_kit.viz", "amdd_kit.data.video"}``."""
    import ast

    parts = list(path.relative_to(REPO).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = [p for p in package if p != "__init__"]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m == "amdd_kit" or m.startswith("amdd_kit.")}


def test_imports_go_one_way_data_and_viz_never_import_ui():
    """``ui`` (the clip browser, the embedding explorer) stands on ``data`` and ``viz``; the data
    layer never imports presentation (``viz`` or ``ui``), ``viz`` never imports ``ui``, nothing
    else in the kit imports ``ui``, and the old homes of the two modules are gone (no shim).
    Inside ``ui`` the explorer's parts (map, clip view, your video, plotly glue) stand alone:
    only ``ui/explorer.py``, which assembles them, imports a ``ui`` sibling."""
    kit = REPO / "amdd_kit"
    bad = []
    for path in sorted(kit.rglob("*.py")):
        rel = path.relative_to(kit).parts
        imports = _kit_imports(path)
        forbidden = ()
        if rel[0] == "data":
            forbidden = ("amdd_kit.viz", "amdd_kit.ui")
        elif rel[0] != "ui":
            forbidden = ("amdd_kit.ui",)
        elif rel[-1] != "explorer.py":
            forbidden = ("amdd_kit.ui",)
        bad += [f"{'/'.join(rel)} imports {m}" for m in sorted(imports)
                if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert bad == []
    assert _kit_imports(kit / "ui" / "browse.py") >= {"amdd_kit.viz"}     # the check sees imports
    assert _kit_imports(kit / "ui" / "explorer.py") >= {"amdd_kit.ui.embedding_map",
                                                         "amdd_kit.ui.clip_view"}
    assert not (kit / "widgets.py").exists() and not (kit / "data" / "browse.py").exists()
    import ast
    body = ast.parse((kit / "ui" / "__init__.py").read_text()).body
    assert len(body) == 1 and isinstance(body[0].value, ast.Constant)     # a docstring only

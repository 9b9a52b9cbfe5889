"""The course lab, inside an exercise notebook: the checks, and the data two exercises work on.

The exercise notebooks (built from ``notebooks/exercises/NN_*.ipynb`` by
:func:`amdd_kit.course.build`) call, in their setup cell and tasks:

* :func:`grader` -- otter's ``grader`` (it finds the notebook even when a student renamed it);
  ``grader.check("q_name")`` under each task says what is wrong;
* :func:`messy_fakeavceleb` -- the damaged dataset copy exercise 01 asks about;
* :func:`silence_tables` -- the leading silences exercise 06 works on.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from . import paths

log = logging.getLogger(__name__)

__all__ = ["grader", "messy_fakeavceleb", "MESSY_ROWS", "silence_tables"]


def grader(notebook: str):
    """otter's ``Notebook`` for an exercise: ``grader.check("q_name")`` runs a task's checks.

    The checks are stored in the notebook file's metadata, so otter must find that file: the
    one JupyterLab names (``$JPY_SESSION_NAME``, which follows a rename), else ``notebook``
    in the working folder, else the only notebook there.
    """
    import otter

    here = sorted(Path.cwd().glob("*.ipynb"))
    session = Path(os.environ.get("JPY_SESSION_NAME", "")).name
    for cand in (session, notebook):
        if cand and Path(cand).is_file():
            return otter.Notebook(cand)
    if len(here) == 1:
        return otter.Notebook(here[0].name)
    raise FileNotFoundError(
        f"the checks live in this notebook's file, and {notebook!r} is not in {Path.cwd()} "
        f"(found {[p.name for p in here]}): open the notebook in JupyterLab, or run it from its "
        f"own folder under the name {notebook!r}")


#: The rows :func:`messy_fakeavceleb` adds to a copy of ``meta_data.csv``: what each breaks.
MESSY_ROWS = ("a file that is not in the download",
              "an absolute directory",
              "a directory that climbs out of the root with '..'",
              "a file listed a second time under another method",
              "no directory, no type, race or gender to rebuild it from")


def messy_fakeavceleb(root: str | Path, out: str | Path, n_identities: int = 2,
                      seed: int = 0) -> Path:
    """A small FakeAVCeleb-layout copy with a damaged ``meta_data.csv`` (exercise 01).

    Copies the videos of ``n_identities`` identities of the FakeAVCeleb folder ``root`` to
    ``out`` and writes their ``meta_data.csv`` rows, in the original's format (trailing comma and
    all), with one bad row per item of :data:`MESSY_ROWS` shuffled in. Returns ``out``. Which rows
    the adapter refuses, and why, is the exercise. The copy is deterministic: an ``out`` made by
    the same call is reused, and a new one is written aside and moved into place, so several
    notebooks graded at once can share it.
    """
    import numpy as np

    from .data.adapters import read_dataset

    out = Path(out)
    key = {"root": str(Path(root).resolve()), "n_identities": n_identities, "seed": seed}
    marker = out / ".messy.json"
    if marker.exists() and json.loads(marker.read_text()) == key:
        return out
    res = read_dataset("fakeavceleb", root)     # finds meta_data.csv, un-nests the download
    raw = pd.read_csv(res.root / "meta_data.csv", dtype=str, keep_default_na=False)
    dir_col = raw.columns[-1]
    rng = np.random.default_rng(seed)
    ids = sorted(raw["source"].unique())
    keep = set(rng.choice(ids, size=min(n_identities, len(ids)), replace=False).tolist())
    rows = raw[raw["source"].isin(keep)].reset_index(drop=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    for rel in res.manifest.loc[res.manifest["identity"].isin(keep), "path"]:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(res.root / rel, work / rel)
    real = rows[rows["method"] == "real"].iloc[0]
    fake = rows[rows["method"] != "real"].iloc[0]
    bad = [real.copy(), real.copy(), fake.copy(), fake.copy(), real.copy()]   # MESSY_ROWS, in order
    bad[0]["path"] = "09999.mp4"
    bad[1][dir_col] = "/home/someone/FakeAVCeleb/RealVideo-RealAudio"
    bad[2][dir_col] = "FakeAVCeleb/../../private"
    bad[3]["method"] = "wav2lip" if fake["method"] != "wav2lip" else "rtvc"
    bad[4][[dir_col, "type", "race", "gender"]] = ""
    table = rows
    for row in bad:   # each at a random place after the first two rows
        at = int(rng.integers(2, len(table) + 1))
        table = pd.concat([table.iloc[:at], row.to_frame().T, table.iloc[at:]], ignore_index=True)
    # the real file's header ends with a comma: its last column has no name
    header = ",".join(raw.columns[:-1]) + ",\n"
    (work / "meta_data.csv").write_text(header + table.to_csv(header=False, index=False))
    (work / ".messy.json").write_text(json.dumps(key))
    if out.exists() and not (marker.exists() and json.loads(marker.read_text()) == key):
        shutil.rmtree(out)                      # made from another corpus or seed
    try:
        work.rename(out)
    except OSError:                             # another process put the same copy there first
        shutil.rmtree(work, ignore_errors=True)
    return out


def silence_tables(run_dir: str | Path, data_dir: str | Path, config: str = "tiny",
                   workers: int = 1) -> pd.DataFrame:
    """Leading silence of every video of the clean and the shortcut corpus (exercise 06).

    Reads ``run_dir/shortcut_silence.csv`` when notebook 06's shortcut audit wrote it. Otherwise
    measures it the same way (:func:`amdd_kit.experiments.shortcut.silence_table`, one row per
    video with its identity ``split``), after rendering the shortcut corpus into
    ``data_dir/shortcut`` when it is missing (the FakeAVCeleb layout only, from the clean
    corpus's size and seed), and keeps the table in ``run_dir/exercises/`` for the next time (the
    first time takes about two minutes on 2 cores). Returns the rows of both, told apart by the
    column ``corpus`` (``"clean"``, ``"shortcut"``).
    """
    from filelock import FileLock

    from .experiments.shortcut import SILENCE_FILE

    run_dir = paths.resolve(run_dir)
    if (run_dir / SILENCE_FILE).exists():
        return pd.read_csv(run_dir / SILENCE_FILE, keep_default_na=False, na_values=[""])
    saved = run_dir / "exercises" / SILENCE_FILE
    saved.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(saved) + ".lock"):        # one measurement when several notebooks ask
        if saved.exists():
            return pd.read_csv(saved, keep_default_na=False, na_values=[""])
        table = _measure_silences(data_dir, config, workers)
        table.to_csv(saved, index=False)
    return table


def _measure_silences(data_dir: str | Path, config: str, workers: int) -> pd.DataFrame:
    from .config import get_config
    from .data.synthetic import make_corpus
    from .experiments.shortcut import corpus_settings, silence_table

    data_dir = paths.resolve(data_dir)
    paths.require(data_dir / "fakeavceleb", "render the corpus first: notebook 01, or "
                  "`amdd-kit make-data --out data/synthetic`")
    s = corpus_settings(data_dir)
    sc_dir = data_dir / "shortcut"
    if not (sc_dir / ".complete.json").exists():
        log.warning("rendering the shortcut corpus into %s (about a minute)", sc_dir)
    roots = make_corpus(sc_dir, size=s["size"], seed=s["seed"], shortcut="leading-silence",
                        workers=workers, progress=False, n_identities=s.get("n_identities"),
                        layouts=("fakeavceleb",))
    cfg = get_config(config)
    return pd.concat([silence_table(roots["fakeavceleb"], cfg).assign(corpus="shortcut"),
                      silence_table(data_dir / "fakeavceleb", cfg).assign(corpus="clean")],
                     ignore_index=True)

"""The ``amdd-kit`` command: one entry point for notebooks, schedulers and tests.

Every sub-command is a thin wrapper over a function in ``amdd_kit``. Exit codes: 0 on success,
2 on bad arguments or unusable input (with a one-line reason on stderr), 1 on a failure while
running (e.g. a notebook of the series raised).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

DATASETS = ("fakeavceleb", "lavdf", "dftimit", "dfdm", "av1m", "csv")


class UsageError(Exception):
    """Bad arguments or unusable input: reported in one line, exit code 2."""


def _parse_sets(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects key=value (e.g. train.epochs=3), got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _config(name: str, sets: dict[str, str] | None = None):
    from .config import get_config
    try:
        return get_config(name, sets)
    except ValueError as e:
        raise UsageError(str(e)) from e


def _need_dir(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UsageError(f"{what} {path!r} is not a directory")
    return p


# -- sub-commands ---------------------------------------------------------------------------
def cmd_make_data(a: argparse.Namespace) -> int:
    from .data.synthetic import make_corpus
    roots = make_corpus(a.out, size=a.size, seed=a.seed, shortcut=a.shortcut,
                        workers=a.workers)
    for name, root in roots.items():
        print(f"{name}: {root}")
    return 0


def cmd_preprocess(a: argparse.Namespace) -> int:
    _need_dir(a.root, "--root")
    cfg = _config(a.config, _parse_sets(a.set))
    from .data.preprocess import preprocess_dataset
    summary = preprocess_dataset(a.dataset, a.root, a.out, cfg.data, workers=a.workers,
                                 progress=not a.quiet, limit=a.limit)
    from .jsonio import jsonable
    print(json.dumps(jsonable(summary), indent=2, default=str))
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    _need_dir(a.store, "--store")
    sets = _parse_sets(a.set)
    sets["model.arch"] = a.model
    if a.epochs is not None:
        sets["train.epochs"] = str(a.epochs)
    cfg = _config(a.config, sets)
    from .distributed import is_main, launch, per_process_batch, world_size
    if a.processes > 1 and world_size() == 1:  # launch the processes; each runs this command
        epochs = ["--epochs", str(a.epochs)] if a.epochs is not None else []
        argv = ["train", "--store", a.store, "--out", a.out, "--config", a.config,
                "--model", a.model, *epochs, *[x for s in a.set or () for x in ("--set", s)]]
        try:
            per_process_batch(cfg.train.batch_size, a.processes)
            return launch(argv, a.processes)
        except ValueError as e:
            raise UsageError(str(e)) from e
    from .data.store import ClipStore
    from .train import train
    learn = train(ClipStore(a.store), cfg, a.out)
    if not is_main():
        return 0
    metrics = json.loads((Path(a.out) / "metrics.json").read_text())
    print(json.dumps({k: metrics[k] for k in ("balanced_accuracy", "auc",
                                                "attribution_accuracy", "n_test")}, indent=2))
    del learn
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    _need_dir(a.run, "--run")
    _need_dir(a.store, "--store")
    from .evaluate import evaluate_run
    cross = {}
    for item in a.cross or ():
        name, sep, path = item.partition("=")
        if not sep:
            raise UsageError(f"--cross expects name=STORE, got {item!r}")
        cross[name] = _need_dir(path, "--cross store")
    metrics = evaluate_run(a.run, a.store, out=a.out, cross_stores=cross or None, open_set=True)
    from .jsonio import jsonable
    print(json.dumps(jsonable(metrics), indent=2, default=str))
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from .inference import predict_videos
    _need_dir(a.run, "--run")
    missing = [v for v in a.videos if not Path(v).exists()]
    if missing:
        raise UsageError(f"no such video: {missing[0]}")
    results = predict_videos(a.run, a.videos)
    print(json.dumps(results, indent=2))
    return 0 if all("error" not in r for r in results) else 2


def cmd_series(a: argparse.Namespace) -> int:
    from .series import run_series
    params: dict[str, Any] = {}
    for name, value in a.p or ():
        params[name] = _yaml_value(value)
    _config(a.config)  # validates the name
    result = run_series(a.out, config=a.config, data_dir=a.data, params=params,
                        notebooks=a.notebooks or None)
    ok = getattr(result, "ok", True)
    _print_lesson(a.out)        # ends with where to look next (the report, the notebooks)
    if ok:
        return 0
    print(f"amdd-kit: series failed: {getattr(result, 'error', 'see the executed notebook')}",
          file=sys.stderr)
    return 1


def _print_lesson(run_dir: str | Path) -> None:
    """The closing summary of a series (:func:`amdd_kit.lessons.lesson_summary`); never the
    reason a finished series reports a failure."""
    from .lessons import lesson_summary
    from .series import list_notebooks, notebooks_dir
    try:
        folder = notebooks_dir()
        names = [p.name for p in list_notebooks(folder)]
        print(lesson_summary(run_dir, names, folder), flush=True)
    except Exception as exc:  # a summary must not hide the series' own outcome
        print(f"amdd-kit: could not summarise {run_dir}: {exc}", file=sys.stderr)
        print(f"series output: {run_dir}")


def cmd_report(a: argparse.Namespace) -> int:
    from .export import history_page
    _need_dir(a.runs, "--runs")
    path = history_page(a.runs)
    print(f"report: {path}")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .export import export_html
    if not Path(a.notebook).is_file():
        raise UsageError(f"no such notebook: {a.notebook}")
    print(f"report: {export_html(a.notebook, a.html)}")
    return 0


def cmd_lab(a: argparse.Namespace) -> int:
    from . import course
    if a.step == "build":
        try:
            built = course.build(a.out, notebooks=a.notebooks or None, run_tests=a.run_tests)
        except RuntimeError as e:
            print(f"amdd-kit: lab build: {e}", file=sys.stderr)
            return 1
        print(built.table().to_string(index=False))
        print(f"hand out {built.out / 'student'}/*.ipynb; grade with `amdd-kit lab grade "
              f"SUBMISSIONS --build {built.out}`")
        return 0
    if a.step == "grade":
        params = {name: _yaml_value(value) for name, value in a.p or ()}
        out = Path(a.out) if a.out else None
        table = course.grade(a.submissions, build_dir=a.build, out=out, params=params,
                             kernel=a.kernel, timeout=a.timeout, jobs=a.jobs)
        print(table.drop(columns="error").to_string(index=False))
        for r in table[table["error"] != ""].itertuples():
            print(f"not graded: {r.submission}: {r.error}", file=sys.stderr)
        sub = Path(a.submissions)
        print(f"grade table: {out or (sub.parent if sub.is_file() else sub) / 'grades.csv'}")
        return 0
    raise UsageError("amdd-kit lab needs a step: build or grade (amdd-kit lab --help)")


def _yaml_value(text: str) -> Any:
    """Parse a -p value the way papermill's CLI does (numbers, booleans, lists stay typed)."""
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="amdd-kit",
        description="Audio-visual deepfake detection and generator attribution (AMDD, CAD).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("make-data", help="render the synthetic corpus (FakeAVCeleb layout + "
                                         "held-out LAV-DF, DeepfakeTIMIT, DFDM layouts)")
    s.add_argument("--out", required=True, help="folder to write the dataset roots into")
    s.add_argument("--size", choices=("tiny", "standard"), default="tiny")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--shortcut", choices=("leading-silence",), default=None,
                   help="reproduce FakeAVCeleb's leading-silence shortcut in fake audio")
    s.add_argument("--workers", type=int, default=1)
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("preprocess", help="decode, crop faces, compute log-mels, pack a clip store")
    s.add_argument("--dataset", required=True, choices=DATASETS)
    s.add_argument("--root", required=True, help="dataset root (for FakeAVCeleb: the folder "
                                                  "with meta_data.csv, or one level above)")
    s.add_argument("--out", required=True, help="clip store folder")
    s.add_argument("--config", default="tiny")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--limit", type=int, default=None, help="only the first N videos")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. data.trim_silence=true")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_preprocess)

    s = sub.add_parser("train", help="train AMDD or CAD on a clip store with fastai")
    s.add_argument("--store", required=True)
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--config", default="tiny")
    s.add_argument("--model", choices=("amdd", "cad"), default="amdd")
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field, e.g. loss.w_cmffc=0")
    s.add_argument("--processes", type=int, default=1, metavar="N",
                   help="train on N processes launched with torchrun: one per GPU, or CPU "
                        "processes (gloo); train.batch_size stays the effective batch, each "
                        "process loads batch_size/N (see amdd_kit.distributed)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="test-split and cross-dataset metrics of a run")
    s.add_argument("--run", required=True)
    s.add_argument("--store", required=True)
    s.add_argument("--out", default=None, help="where to write metrics (default: the run)")
    s.add_argument("--cross", action="append", metavar="NAME=STORE",
                   help="a held-out store to evaluate, e.g. lavdf=data/synthetic/stores/lavdf-tiny")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("predict", help="score videos: JSON with p_fake, generator (\"unknown\" "
                       "when the open set rejects it), probabilities")
    s.add_argument("--run", required=True)
    s.add_argument("videos", nargs="+", metavar="VIDEO")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("series", help="run the notebook series with papermill")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--config", default="tiny")
    s.add_argument("--data", default="data/synthetic", help="data dir (made if missing)")
    s.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="notebook parameter passed to the notebooks that declare it")
    s.add_argument("--notebooks", nargs="*", help="run only these notebooks (names or numbers)")
    s.set_defaults(func=cmd_series)

    s = sub.add_parser("report", help="run history, comparison and an HTML report")
    s.add_argument("--runs", required=True, help="folder that holds the runs and index.csv")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("lab", help="course lab: build the exercise notebooks (otter-grader), "
                                   "grade submitted ones")
    steps = s.add_subparsers(dest="step", metavar="STEP")
    b = steps.add_parser("build", help="student, instructor and autograder versions of "
                                       "notebooks/exercises/*.ipynb")
    b.add_argument("--out", default=None, help="build folder (default build/lab)")
    b.add_argument("--notebooks", nargs="*", help="only these exercises (numbers or names)")
    b.add_argument("--run-tests", action="store_true",
                   help="let otter run every solution against its checks (needs the demo run)")
    g = steps.add_parser("grade", help="grade a folder of submitted notebooks (no Docker) into "
                                       "a grade table")
    g.add_argument("submissions", help="folder of submitted .ipynb files (or one notebook)")
    g.add_argument("--build", default=None, help="the build folder (default build/lab)")
    g.add_argument("--out", default=None, help="grade table CSV (default SUBMISSIONS/grades.csv)")
    g.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="notebook parameter set in every submission, e.g. -p run_dir runs/demo")
    g.add_argument("--kernel", default=None, help="Jupyter kernel (default: as amdd-kit series)")
    g.add_argument("--timeout", type=float, default=900.0,
                   help="seconds one submission may run before it is stopped (default 900)")
    g.add_argument("--jobs", type=int, default=1,
                   help="submissions graded at the same time (about one CPU core each)")
    s.set_defaults(func=cmd_lab)

    s = sub.add_parser("export", help="an executed notebook as an offline HTML page (code hidden)")
    s.add_argument("notebook", help="executed notebook, e.g. RUN/notebooks/07_retraining_report.ipynb")
    s.add_argument("html", help="page to write, e.g. RUN/report.html")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 on bad arguments
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UsageError as e:
        print(f"amdd-kit: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("amdd_kit"):
            print(f"amdd-kit: {args.command}: not implemented yet ({e.name} is missing)",
                  file=sys.stderr)
            return 2
        raise
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        # unusable input (missing files, unreadable metadata, bad config values)
        print(f"amdd-kit: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

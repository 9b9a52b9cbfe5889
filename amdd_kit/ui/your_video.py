"""A student's own video in the explorer: the words and the numbers around it.

The explorer's ``add_video`` preprocesses a video with the same code as the clip stores
(:func:`amdd_kit.inference.video_windows`, which calls
:func:`amdd_kit.data.decode.clips_from_video` on every back-to-back window) and predicts each
window. This module holds what the explorer then says and shows about it: the open-set verdict
(:func:`open_set_verdict`, the one call point), the verdict in words (:func:`video_summary`),
p_fake per window (:func:`video_timeline`), the nearest clips of the map to one window
(:func:`nearest_clips`) and a window's caption (:func:`window_caption`), an unusable video as
one sentence (:func:`predict_windows`, :func:`skip_sentence`), and an uploaded file written to disk for the same path
(:func:`saved_upload`).
"""
from __future__ import annotations

import html
import json
import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .. import geometry
from ..config import METHODS
from ..viz import timeline_figure

log = logging.getLogger(__name__)

VIDEO_FORMATS = ".mp4,.avi,.mov,.mkv,.webm,.m4v"

#: a skip reason of :class:`amdd_kit.data.video.SkipVideo` as a sentence for the widget
SKIP_SENTENCES: dict[str, str] = {
    "missing": "There is no file at {path}. Check the path (relative paths start at the project "
               "folder).",
    "unsafe_path": "{name} was refused: {detail}.",
    "empty": "{name} is empty (0 bytes): the upload or copy did not finish.",
    "corrupt": "{name} could not be read as a video ({detail}).",
    "no_video": "{name} has no video stream: the model needs a face to look at.",
    "no_audio": "{name} has no audio track: the model needs the voice as well as the face.",
    "no_face": "No face was found in {name} ({detail}). Try the 'dlib' face detector, or a "
               "video where the face is frontal, large and well lit.",
    "too_short": "{name} is too short for one clip ({detail}).",
    "error": "{name} could not be processed: {detail}.",
}

__all__ = ["VIDEO_FORMATS", "SKIP_SENTENCES", "skip_sentence", "predict_windows",
           "open_set_verdict",
           "run_face_detector", "saved_upload", "video_summary", "video_timeline",
           "nearest_clips", "window_caption"]


def skip_sentence(err: Any, path: str | Path) -> str:
    """A :class:`~amdd_kit.data.video.SkipVideo` as one sentence naming the file."""
    reason = getattr(err, "reason", "error")
    detail = getattr(err, "detail", "") or str(err)
    return SKIP_SENTENCES.get(reason, SKIP_SENTENCES["error"]).format(
        path=path, name=Path(path).name, detail=detail)


def predict_windows(load_run: Callable[[], tuple[Any, Any]], path: Path, audio: Any = None,
                    face_detector: str | None = None) -> tuple[Any, Any, pd.DataFrame] | str:
    """``(cfg, clips, table)``: the run ``load_run()`` returns (``(cfg, model)``) applied to
    every window of the video at ``path`` (:func:`amdd_kit.inference.video_windows`); or, when
    the video cannot be used, the reason as one sentence (also logged)."""
    from ..data.video import SkipVideo
    from ..inference import video_windows

    try:
        cfg, model = load_run()
        clips, table = video_windows(model, cfg, path, audio=audio, face_detector=face_detector)
    except SkipVideo as e:
        log.warning("%s", skip_sentence(e, path))
        return skip_sentence(e, path)
    except ImportError as e:         # the dlib face detector without its package
        return str(e)
    except (OSError, ValueError, RuntimeError) as e:
        msg = f"{path.name} could not be used: {e}"
        log.warning("%s", msg, exc_info=log.isEnabledFor(logging.DEBUG))
        return msg
    return cfg, clips, table


def open_set_verdict(run_dir: str | Path, windows: pd.DataFrame) -> dict[str, Any]:
    """THE call point of open-set rejection for a student's video: the run's open set
    (:func:`amdd_kit.openset.load_or_fit_open_set`: the saved one, or fitted from the run's
    embeddings and saved) applied to ``windows``, the table of
    :func:`amdd_kit.inference.video_windows` (it needs ``attr_logits`` and ``embedding``).

    Returns ``{"score": name, "scores": [K] float, "unknown": [K] bool (per window),
    "threshold": float, "video_unknown": bool}``; the video is unknown when its windows' mean
    score passes the threshold, the rule ``amdd-kit predict`` applies. Raises what fitting the
    open set raises (e.g. ``FileNotFoundError`` for a run without its embeddings tables)."""
    from ..openset import load_or_fit_open_set  # openset builds on inference: import on use

    rejector = load_or_fit_open_set(run_dir)
    scores = rejector.scores(windows)[rejector.recommended].to_numpy(dtype=float)
    return {"score": rejector.recommended, "scores": scores,
            "unknown": scores > rejector.threshold, "threshold": float(rejector.threshold),
            "video_unknown": bool(scores.mean() > rejector.threshold)}


def run_face_detector(run_dir: Path | None) -> str:
    """The face detector the run was preprocessed with (``data.face_detector`` of its
    ``config.json``); ``"haar"`` without a run or a readable config."""
    if run_dir is None or not (run_dir / "config.json").is_file():
        return "haar"
    try:
        det = json.loads((run_dir / "config.json").read_text())["data"].get(
            "face_detector", "haar")
    except (ValueError, KeyError, TypeError):
        return "haar"
    return det if det in ("haar", "dlib") else "haar"


@contextmanager
def saved_upload(files: Any) -> Iterator[Path]:
    """The first file of an ipywidgets ``FileUpload`` value, written to a temporary folder
    under its own name; the folder is deleted on leaving the ``with`` block."""
    f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
    name = Path(str(f.get("name", "upload.mp4"))).name or "upload.mp4"
    tmp = Path(tempfile.mkdtemp(prefix="amdd-upload-"))
    try:
        path = tmp / name
        path.write_bytes(bytes(f["content"]))
        yield path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def video_summary(video: dict[str, Any]) -> str:
    """The video's verdict in words (HTML): fake or real, generator (or unknown), windows.
    ``video``: the explorer's ``video`` dict (``path``, ``table``, ``window_s``, ``open_set``:
    :func:`open_set_verdict`'s result, or a sentence saying why there is none)."""
    t = video["table"]
    p = float(t["p_fake"].mean())
    probs = np.stack(t["attr_probs"].to_numpy()).mean(0)
    gen = METHODS[int(probs.argmax())]
    n_fake = int((t["pred_label"] == 1).sum())
    s = (f"<b>{html.escape(video['path'].name)}</b>: {len(t)} window(s) of "
         f"{video['window_s']:.2f} s, mean p_fake <b>{p:.2f}</b> "
         f"({'fake' if p >= 0.5 else 'real'}; {n_fake} of {len(t)} windows judged fake). ")
    os_ = video["open_set"]
    if isinstance(os_, dict):
        unknown = os_["video_unknown"]
        s += (f"Generator: <b>{'unknown' if unknown else gen}</b> (open-set score "
              f"{os_['score']}: mean {os_['scores'].mean():.3g} against the threshold "
              f"{os_['threshold']:.3g}; {int(os_['unknown'].sum())} of {len(t)} windows "
              "above it" + (f"; nearest known class {gen}" if unknown else "") + ").")
    else:
        s += (f"Most likely generator of the 7 known classes: <b>{gen}</b> "
              f"(p={probs.max():.2f}). Open-set rejection is not available"
              + (f" ({html.escape(os_)})" if isinstance(os_, str) else "")
              + ", so a generator it has never seen is still named as one of these.")
    return s + " The stars on the map are its windows; click one to see it below."


def video_timeline(video: dict[str, Any]) -> go.Figure:
    """p_fake per window of the video (:func:`amdd_kit.viz.timeline_figure`), its known fake
    segments shaded."""
    t = video["table"]
    return timeline_figure(t["start_s"], t["p_fake"], video["window_s"], video["fake_segments"],
                           title=f"p_fake per {video['window_s']:.2f} s window: "
                                 f"{video['path'].name}")


def nearest_clips(df: pd.DataFrame, col: str, q: np.ndarray, k: int = 5) -> pd.DataFrame:
    """The ``k`` rows of ``df`` nearest to the vector ``q`` ``[D]`` in column ``col`` (cosine
    distance): ``clip_id``, ``method``, ``identity``, ``pred_method``, ``distance``."""
    X = geometry.stack_column(df, col)
    q = np.asarray(q, dtype=np.float64)
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    d = 1.0 - Xn @ (q / max(np.linalg.norm(q), 1e-12))
    order = np.argsort(d, kind="stable")[:k]
    cols = [c for c in ("clip_id", "method", "identity", "pred_method") if c in df]
    return df.iloc[order][cols].assign(distance=d[order].round(3)).reset_index(drop=True)


def window_caption(video: dict[str, Any], window: int, near: pd.DataFrame, space: str
                   ) -> tuple[str, str]:
    """``(HTML, clip view title)`` of one window of the video: its time, p_fake and predicted
    method, and the table ``near`` of its nearest clips in ``space`` (:func:`nearest_clips`)."""
    r = video["table"].iloc[window]
    name = video["path"].name
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in near.itertuples(index=False))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in near.columns)
    info = (f"<b>your video</b>: {html.escape(name)}, window {window} "
            f"({r['start_s']:.2f}-{r['end_s']:.2f} s): p_fake <b>{r['p_fake']:.3f}</b>, "
            f"predicted <b>{html.escape(str(r['pred_method']))}</b><br>"
            f"nearest clips of the map ({space} space, cosine distance):"
            f"<table><tr>{head}</tr>{rows}</table>")
    title = (f"your video ({name}), window {window} at {r['start_s']:.2f} s: p_fake "
             f"{r['p_fake']:.2f}, predicted {r['pred_method']}")
    return info, title

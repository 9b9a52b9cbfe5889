"""Using a trained run: load it safely, embed clips of a store, score new videos.

A run is rebuilt from ``config.json`` + ``model.pth`` (a state dict loaded with
``torch.load(..., weights_only=True)``), never from a pickle: a checkpoint from an untrusted
source cannot execute code when it is loaded.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from fastai.callback.progress import ProgressCallback  # noqa: F401 (Learner.no_bar)
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastcore.basics import noop
from fastcore.xtras import modified_env
from torch import nn

from .config import AUDIO_TRACES, METHOD_TRACES, METHODS, VISUAL_TRACES, Config
from .data.decode import VideoClips, clips_from_video
from .data.video import SkipVideo
from .loaders import inference_dataloader
from .models import build_model
from .precision import precision_callbacks

log = logging.getLogger(__name__)

#: the vectors of an embeddings table, named as the model's output dict names them: the shared
#: (fused) embedding and the visual / audio fingerprints
EMBED_COLUMNS = ("embedding", "f_v", "f_a")
#: the arrays :func:`forward_arrays` returns
_OUTPUTS = ("p_fake", "attr_logits", "attr_probs", *EMBED_COLUMNS, "trace_v", "trace_a")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_run(run_dir: str | Path, device: torch.device | str | None = None
             ) -> tuple[Config, nn.Module]:
    """Rebuild the model of a run directory: ``(cfg, model)`` in eval mode.

    The weights are read with ``weights_only=True``; a file that is not a plain state dict
    (e.g. a pickled Learner) is refused with a clear error, and so are weights whose layers do
    not fit the model (a run trained by an older amdd-kit): the error says to retrain.
    """
    run_dir = Path(run_dir)
    cfg_path, weights = run_dir / "config.json", run_dir / "model.pth"
    for p in (cfg_path, weights):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: is {run_dir} a finished training run?")
    cfg = Config.load(cfg_path)
    cfg.model.pretrained = False  # the run's own weights replace any initial weights
    model = build_model(cfg)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError and friends
        raise ValueError(f"{weights} is not a plain state dict that can be loaded safely "
                         f"(weights_only=True): {e}") from e
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # missing/unexpected keys or size mismatches
        raise RuntimeError(
            f"{weights} does not fit the model this amdd-kit builds from {cfg_path} (it was "
            f"probably trained by an older version; the layers changed). Retrain the run: "
            f"notebook 03, or `amdd-kit train --store STORE --out {run_dir}`.\n{e}") from None
    return cfg, model.to(device or default_device()).eval()


def forward_arrays(model: nn.Module, frames_u8, mels_f16, cfg: Config,
                   batch_size: int = 32, device=None, indices: Sequence[int] | None = None
                   ) -> dict[str, np.ndarray]:
    """Run the model over clips held in arrays (``[N,T,3,H,W]`` uint8, ``[N,n_mels,S]`` f16;
    numpy, memmaps or a store's ``frames``/``mels``), or over their ``indices`` only.

    The clips go through fastai as validation batches do: a DataLoader with the training
    ``after_batch`` transforms (:func:`amdd_kit.loaders.inference_dataloader`), the model in eval
    mode under the run's autocast (:func:`amdd_kit.precision.precision_callbacks`), and
    ``Learner.get_preds``. That Learner has no ``PreciseBN``: scoring never touches the
    BatchNorm statistics the weights were saved with.

    Returns numpy arrays: ``p_fake [N]``, ``attr_logits [N,C]`` and ``attr_probs [N,C]`` (their
    softmax), the embeddings
    ``embedding [N,d_e]``, ``f_v``, ``f_a`` ``[N,d_f]``, and each fingerprint's trace guess
    ``trace_v [N]`` (index into ``VISUAL_TRACES``), ``trace_a [N]`` (``AUDIO_TRACES``).
    """
    device = torch.device(device) if device else next(model.parameters()).device
    dl = inference_dataloader(frames_u8, mels_f16, indices, bs=batch_size, device=device)
    if len(dl.dataset) == 0:
        return {k: np.zeros((0,)) for k in _OUTPUTS}
    learn = Learner(DataLoaders(dl, dl), model, loss_func=noop,
                    cbs=precision_callbacks(cfg, device))
    # The model returns a dict, which fastai concatenates but cannot reorder: reorder=False is
    # right because this DataLoader never shuffles. Inside a several-process job (WORLD_SIZE > 1)
    # get_preds would all_gather every batch from every process (fastai's maybe_gather), but
    # these are this process's clips alone (rank 0 scoring the test split): hide WORLD_SIZE.
    with learn.no_bar(), modified_env("WORLD_SIZE"):
        out, _ = learn.get_preds(dl=dl, reorder=False)
    out = {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
    res = {"p_fake": torch.sigmoid(out["det_logit"]), "attr_logits": out["attr_logits"],
           "attr_probs": torch.softmax(out["attr_logits"], -1),
           **{k: out[k] for k in EMBED_COLUMNS}}
    for k in ("trace_v", "trace_a"):
        logits = out.get(f"trace_logits_{k[-1]}")
        res[k] = (logits.argmax(-1) if logits is not None
                  else torch.full((len(dl.dataset),), -1))
    return {k: v.numpy() for k, v in res.items()}


def embed_store(model: nn.Module, store, cfg: Config, indices: Sequence[int] | None = None,
                batch_size: int = 32, device=None, split: Sequence[str] | None = None
                ) -> pd.DataFrame:
    """Predictions and embeddings for clips of a store: one row per clip.

    Columns (the ``embeddings.parquet`` contract): ids and labels from the store manifest
    (``label``: the video's label; ``clip_label``: the window's, what the detector is scored
    against: they differ only for partial fakes), ``p_fake``, ``pred_label``, ``pred_method``,
    ``pred_method_idx``, ``split`` and the vectors named as the model names them
    (:data:`EMBED_COLUMNS`): ``embedding`` (shared embedding), ``f_v``, ``f_a`` (fingerprints);
    ``trace_visual`` / ``trace_audio`` (each modality's true trace, ``config.METHOD_TRACES``;
    empty for a generator outside the table) and ``pred_trace_visual`` / ``pred_trace_audio``
    (what the fingerprints' trace classifiers say, CMFFC Eq. 4); ``attr_logits`` (the
    attribution head's ``C`` logits, list<float32>: the open-set scores of
    :mod:`amdd_kit.openset` need them, the softmax alone loses the energy).
    """
    m = store.manifest
    idx = np.arange(len(m)) if indices is None else np.sort(np.asarray(indices, np.int64))
    # the DataLoader reads the store's memmaps one clip at a time
    res = forward_arrays(model, store.frames, store.mels, cfg, batch_size, device, indices=idx)
    cols = [c for c in ("clip_id", "video_id", "dataset", "path", "identity", "method",
                        "category", "label", "clip_label", "method_idx", "start_s")
            if c in m.columns]
    df = m.iloc[idx][cols].reset_index(drop=True)
    df["p_fake"] = res["p_fake"].astype(float)
    df["pred_label"] = (df["p_fake"] >= 0.5).astype(int)
    pred_idx = res["attr_probs"].argmax(axis=1) if len(df) else np.zeros(0, dtype=int)
    df["pred_method_idx"] = pred_idx.astype(int)
    df["pred_method"] = [METHODS[i] for i in pred_idx]
    traces = [METHOD_TRACES.get(str(m), ("", "")) for m in df.get("method", [""] * len(df))]
    df["trace_visual"] = [t[0] for t in traces]
    df["trace_audio"] = [t[1] for t in traces]
    for col, key, names in (("pred_trace_visual", "trace_v", VISUAL_TRACES),
                            ("pred_trace_audio", "trace_a", AUDIO_TRACES)):
        df[col] = [names[i] if i >= 0 else "" for i in res[key].astype(int)]
    if split is not None:
        df["split"] = np.asarray(split)[idx]
    for col in (*EMBED_COLUMNS, "attr_logits"):
        df[col] = list(res[col].astype(np.float32)) if len(df) else []
    return df


def predict_videos(run_dir: str | Path, videos: Sequence[str | Path],
                   audio: Sequence[str | Path | None] | None = None,
                   open_set: bool = True) -> list[dict]:
    """Score videos with a trained run, preprocessing them exactly as training did.

    Each video is cut into the run's clip windows; clip probabilities are averaged. Returns one
    dict per video: ``video``, ``p_fake``, ``is_fake``, ``generator``, ``probs`` (generator ->
    probability), ``n_clips``; or ``video`` and ``error`` when it cannot be used.

    With ``open_set`` (:mod:`amdd_kit.openset`; fitted once from the run's store and saved beside
    the run when ``RUN/open_set.json`` is missing or belongs to other weights) the dict also
    holds ``closed_set_generator`` (the head's pick among the classes it was trained on) and
    ``open_set``: ``score`` (the recommended score's name), ``value`` (the mean
    of its clips' scores; higher = more likely an unknown generator), ``threshold``, ``unknown``
    (value above the threshold) and ``clips_rejected``. When ``unknown``, ``generator`` is
    ``"unknown"``. ``open_set`` is ``None`` when the open set cannot be fitted (the training
    store is gone): the reason is logged.
    """
    cfg, model = load_run(run_dir)
    rejector = _open_set(run_dir, (cfg, model)) if open_set else None
    results = []
    for i, video in enumerate(videos):
        a = audio[i] if audio else None
        try:
            clips = clips_from_video(Path(video), cfg.data, audio_path=a)
        except SkipVideo as e:
            results.append({"video": str(video), "error": f"{e.reason}: {e.detail}"})
            continue
        r = forward_arrays(model, clips.frames, clips.mels, cfg)
        probs = r["attr_probs"].mean(axis=0)
        p_fake = float(r["p_fake"].mean())
        res = {
            "video": str(video), "p_fake": round(p_fake, 6), "is_fake": p_fake >= 0.5,
            "generator": METHODS[int(probs.argmax())],
            "probs": {m: round(float(p), 6) for m, p in zip(METHODS, probs)},
            "n_clips": int(len(clips.frames)),
        }
        if open_set:
            res.update(_open_set_verdict(rejector, r, probs))
        results.append(res)
    return results


def video_windows(model: nn.Module, cfg: Config, video: str | Path,
                  audio: str | Path | None = None, face_detector: str | None = None,
                  max_windows: int = 100, batch_size: int = 32
                  ) -> tuple[VideoClips, pd.DataFrame]:
    """Every window of one video, preprocessed as training did, with the model's predictions.

    Unlike :func:`predict_videos` (the run's ``clips_per_video`` windows, averaged), this cuts
    the whole video into back-to-back windows (up to ``max_windows``) and keeps one row per
    window: what a timeline of p_fake over a long video, or a partial fake, needs.
    ``face_detector`` overrides the run's ``data.face_detector`` (e.g. ``"dlib"`` for a phone
    video on a run trained with Haar crops).

    Returns ``(clips, table)``: ``clips`` as :func:`~amdd_kit.data.decode.clips_from_video`
    gives them (``frames`` uint8 ``[K,T,3,H,W]``, ``mels`` float16 ``[K,n_mels,S]``) and a
    DataFrame with one row per window: ``window``, ``start_s``, ``end_s``, ``p_fake``,
    ``pred_label``, ``pred_method``, ``pred_method_idx``, ``pred_trace_visual`` /
    ``pred_trace_audio``, and every array :func:`forward_arrays` returns per window as a list
    column (``embedding``, ``f_v``, ``f_a``, ``attr_probs``, ...), named as it names them.
    Raises :class:`~amdd_kit.data.video.SkipVideo` (``missing``, ``corrupt``, ``no_face``,
    ``no_audio``, ...) for a video that gives no clip.
    """
    import dataclasses

    data = dataclasses.replace(cfg.data, clips_per_video=int(max_windows),
                               **({"face_detector": face_detector} if face_detector else {}))
    clips = clips_from_video(Path(video), data, audio_path=audio)
    r = forward_arrays(model, clips.frames, clips.mels, cfg, batch_size)
    df = pd.DataFrame({"window": np.arange(len(clips)), "start_s": clips.starts,
                       "end_s": clips.starts + data.window_seconds})
    df["p_fake"] = r["p_fake"].astype(float)
    df["pred_label"] = (df["p_fake"] >= 0.5).astype(int)
    df["pred_method_idx"] = r["attr_probs"].argmax(axis=1).astype(int)
    df["pred_method"] = [METHODS[i] for i in df["pred_method_idx"]]
    for col, key, names in (("pred_trace_visual", "trace_v", VISUAL_TRACES),
                            ("pred_trace_audio", "trace_a", AUDIO_TRACES)):
        df[col] = [names[i] if i >= 0 else "" for i in r[key].astype(int)]
    for key, arr in r.items():
        if arr.ndim == 2 and key not in df:
            df[key] = list(arr.astype(np.float32))
    return clips, df


def _open_set(run_dir: str | Path, run: tuple):
    """The run's open set (saved, or fitted now and saved); ``None`` with a logged reason when
    it cannot be had."""
    from .openset import load_or_fit_open_set  # builds on this module: import late

    try:
        return load_or_fit_open_set(run_dir, run=run)
    except (FileNotFoundError, KeyError, ValueError) as e:
        log.warning("open-set rejection is off for %s: %s", run_dir, e)
        return None


def _open_set_verdict(rejector, r: dict[str, np.ndarray], probs: np.ndarray) -> dict:
    """``closed_set_generator`` and the ``open_set`` fields of one video (see predict_videos)."""
    if rejector is None:
        return {"closed_set_generator": METHODS[int(probs.argmax())], "open_set": None}
    name = rejector.recommended
    clip_scores = rejector.score_arrays(r["attr_logits"], r["embedding"])[name]
    value, threshold = float(clip_scores.mean()), rejector.threshold
    known = rejector.classes
    closed = METHODS[known[int(probs[known].argmax())]]
    out = {"closed_set_generator": closed,
           "open_set": {"score": name, "value": round(value, 6),
                        "threshold": round(threshold, 6), "unknown": bool(value > threshold),
                        "clips_rejected": int((clip_scores > threshold).sum())}}
    if value > threshold:
        out["generator"] = "unknown"
    return out

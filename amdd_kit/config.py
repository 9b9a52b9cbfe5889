"""Every hyper-parameter of the kit in one place: data, model, loss and training.

Two named configurations ship with the kit:

* ``tiny``  -- runs the whole notebook series on 2 CPU cores in minutes. It keeps the AMDD
  architecture (per-frame CNN + temporal attention, mel CNN, cross-modal attention, two MLP
  heads, fingerprint projections) but uses a ResNet18 visual trunk with a Haar wavelet stem
  (pixel-level traces reach a randomly initialised trunk), 64x64 faces, 8 frames (4 of them,
  drawn at random, per training step: ``model.train_frames``) and small widths, because a
  ResNet50 trains at about 6 clips/s on 2 CPU cores. On a CPU with native bfloat16 it trains
  under bf16 autocast (``train.cpu_bf16``, :mod:`amdd_kit.precision`).
* ``paper`` -- the paper's full model: ResNet50 per frame at 224x224, 16 frames, 80 mel bins,
  ResNet18 audio trunk, 512-d embeddings. Meant for a CUDA GPU (mixed precision, channels_last).

Time window (both configs cover the same 0.64 s of the video):

* video is resampled to ``fps`` = 25; a clip takes ``n_frames`` frames every ``frame_stride``
  frames, i.e. it covers ``n_frames * frame_stride / fps`` seconds;
* audio is resampled to 16 kHz mono; the log-mel uses hop 160 samples (10 ms, 100 Hz), so one
  video frame at 25 fps spans exactly 4 mel frames and the clip's mel has
  ``mel_frames = round(window_seconds * sample_rate / hop_length)`` columns (64 here).
  n_fft 512 and window 320 samples (20 ms) follow the common audio-visual forensics setup
  (see DATASETS.md, "Common preprocessing in the field").

A config is a plain dataclass tree, saved as ``config.json`` beside every run's outputs and
rebuilt with :func:`Config.from_dict`. Override fields with dotted keys::

    cfg = get_config("tiny").override({"train.epochs": 3, "loss.w_cmffc": 0.0})
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: FakeAVCeleb ``method`` values, the 7 attribution classes, in label-index order.
METHODS: tuple[str, ...] = (
    "real", "rtvc", "faceswap", "fsgan", "wav2lip", "faceswap-wav2lip", "fsgan-wav2lip",
)

#: The trace each generator leaves in each modality, factorised from FakeAVCeleb's ``method``
#: (with its ``video_fake`` / ``audio_fake`` flags): the visual trace is the video generator
#: (``none`` when the video is real), the audio trace the voice generator (``none`` when the
#: audio is real; every FakeAVCeleb fake voice is RTVC's clone). CMFFC (losses.py, Eq. 4) asks
#: each modality's fingerprint to identify its *own* trace: well posed even when one modality is
#: untouched (the audio of a faceswap clip is real audio, so its audio trace is ``none``).
#: :data:`METHOD_TRACES` is the one table of these labels; ``data.synthetic.TRACE_DESCRIPTIONS``
#: describes each generator's traces in words and carries these labels beside them.
VISUAL_TRACES: tuple[str, ...] = (
    "none", "faceswap", "fsgan", "wav2lip", "faceswap-wav2lip", "fsgan-wav2lip",
)
AUDIO_TRACES: tuple[str, ...] = ("none", "rtvc")
METHOD_TRACES: dict[str, tuple[str, str]] = {
    "real": ("none", "none"),
    "rtvc": ("none", "rtvc"),
    "faceswap": ("faceswap", "none"),
    "fsgan": ("fsgan", "none"),
    "wav2lip": ("wav2lip", "rtvc"),
    "faceswap-wav2lip": ("faceswap-wav2lip", "rtvc"),
    "fsgan-wav2lip": ("fsgan-wav2lip", "rtvc"),
}


@dataclass
class DataConfig:
    """How a source video becomes a clip: ``frames`` uint8 [T,3,H,W] + ``mel`` float16 [n_mels,S]."""

    n_frames: int = 8            # T, frames per clip
    frame_stride: int = 2        # take every k-th frame of the 25 fps video
    image_size: int = 64         # H = W of the face crop
    fps: float = 25.0            # video is resampled to this rate
    sample_rate: int = 16_000    # audio is resampled to this rate, mono
    n_mels: int = 64
    n_fft: int = 512
    win_length: int = 320        # 20 ms
    hop_length: int = 160        # 10 ms -> 100 mel frames/s, 4 per video frame at 25 fps
    f_min: float = 20.0
    f_max: float = 8_000.0
    clips_per_video: int = 2     # non-overlapping windows taken from each video
    face_margin: float = 0.25    # enlarge the detected box by this fraction on each side
    # "native": copy an image_size window of source pixels around the face when the face fits
    # (no resampling: pixel-level traces survive); "resize": always resize the enlarged box
    # (area averaging when shrinking erases a 2-px checkerboard). See data/faces.crop_scale.
    crop_mode: str = "native"
    detect_every: int = 5        # run the face detector on every k-th frame, interpolate between
    min_face_fraction: float = 0.2  # skip a video when fewer sampled frames than this have a face
    trim_silence: bool = False   # drop leading silence before windowing (shortcut removal)
    silence_db: float = -40.0    # level below the clip's peak that counts as silence
    # How the store keeps the face crops (data/codec.py, data/shards.py): "raw" = one uint8
    # memmap frames.npy (tiny: fastest to read, bit-exact); "png" = lossless, per-frame files in
    # shards (~2.5x smaller than raw at 224 px); "jpeg" = lossy at jpeg_quality, jpeg_chroma
    # "420" (colour at half resolution) or "444". See paper() for the choice at 224 px.
    frame_codec: str = "raw"
    jpeg_quality: int = 90
    jpeg_chroma: str = "420"
    # "full": the Haar search covers every sampled frame (tiny); "track": search near the last
    # detection first, the whole frame only when that fails (about 3x faster face stage at 224 px,
    # boxes within a few px; data/faces.haar_face_near)
    face_search: str = "full"
    # "haar": OpenCV's frontal-face cascade (in the opencv wheel; finds the synthetic faces,
    # fastest); "dlib": dlib's HOG detector (the optional `faces` extra, dlib-bin), for real
    # footage where Haar misses faces (data/faces.dlib_face, benchmarks/bench_faces.py)
    face_detector: str = "haar"

    @property
    def window_seconds(self) -> float:
        """Length of one clip in seconds."""
        return self.n_frames * self.frame_stride / self.fps

    @property
    def mel_frames(self) -> int:
        """S, the number of mel columns that cover exactly one clip window."""
        return int(round(self.window_seconds * self.sample_rate / self.hop_length))


@dataclass
class ModelConfig:
    """AMDD / CAD architecture."""

    arch: str = "amdd"               # "amdd" or "cad"
    visual_backbone: str = "resnet18"  # torchvision name; the paper uses "resnet50"
    # "resnet": torchvision's stem (7x7 conv stride 2 + max-pool: a 4x reduction that a random
    # init needs many steps to learn to see 2-px traces through). "space_to_depth": a lossless
    # 2x2 pixel unshuffle + 3x3 conv, then the max-pool -- same output size and cost, every
    # pixel reaches the first conv. "haar" (tiny: random init, 64 px faces): the same unshuffle
    # turned into Haar wavelet bands (LL, LH, HL, HH) plus the detail bands' magnitudes (a trace
    # in either phase of the crop), a BatchNorm per channel, then the 3x3 conv, so the weak detail
    # bands where the traces live start on an equal footing with the mean (models/visual.HaarStem)
    visual_stem: str = "haar"
    # frames per clip the visual trunk sees in a training step: a random ordered subset of the
    # T frames, with their own positions (0: all T; evaluation always uses all T). tiny: 4 of 8
    train_frames: int = 4
    audio_backbone: str = "resnet18"
    pretrained: bool = False         # torchvision ImageNet weights (needs them cached or online)
    d_model: int = 128               # width of the temporal / cross-modal attention
    n_heads: int = 4
    n_temporal_layers: int = 1
    d_embed: int = 128               # shared (fused) embedding
    d_fingerprint: int = 64          # f_v, f_a projections used by CMFFC
    head_hidden: int = 128           # hidden width of the 2-layer MLP heads
    dropout: float = 0.1
    n_classes: int = len(METHODS)    # attribution classes
    channels_last: bool = True


@dataclass
class LossConfig:
    """Weights and shape parameters of the five AMDD loss terms (and CAD's two).

    Setting a weight to 0 is the ablation of that term.
    """

    w_det: float = 1.0         # binary focal loss on real/fake
    w_attr: float = 1.0        # cross-entropy over generator classes
    w_con: float = 0.1         # symmetric InfoNCE between visual and audio (real clips)
    # cross-modal forensic fingerprint consistency (trace id + agreement). 1.0, not 0.5: at 0.5
    # the visual fingerprint never learnt the wav2lip mouth on the tiny store (wav2lip clips
    # were all attributed to rtvc, on the training split too); at 1.0 it does (8 epochs)
    w_cmffc: float = 1.0
    w_cent: float = 0.05       # centroid regularisation of the shared embedding
    focal_gamma: float = 2.0
    focal_alpha: float | None = None  # None -> class-balanced from the training split
    temperature: float = 0.1   # InfoNCE temperature
    centroid_margin: float = 1.0  # min distance between class centroids (L2-normalised space)
    fp_scale: float = 10.0     # CMFFC: logit scale of the cosine-prototype trace classifiers
    # CAD (comparison method)
    w_cad_kl: float = 0.1      # KL agreement between the visual and audio predictions
    w_cad_distill: float = 0.5  # unimodal teachers -> fused student distillation
    cad_tau: float = 2.0       # distillation temperature
    w_cad_teacher: float = 1.0  # CAD: focal + CE supervision of each unimodal teacher head
    w_cad_feat: float = 0.0    # CAD: optional feature distillation (aligned stream -> teacher feature)
    cad_amdd_terms: bool = False  # CAD: also apply AMDD's con/cmffc/cent terms (off = CAD alone)


@dataclass
class TrainConfig:
    """Optimisation, splits and reproducibility."""

    # tiny: 12 epochs of 13 steps (214 training clips, batch 16) = 156 AdamW steps, ~6 s an
    # epoch on 2 cores (bf16, 4 training frames; 17 s in float32 with all 8). Test identities,
    # 10 epochs, 7 runs: attribution 0.861-1.0 (the one run below 0.9 never learnt the wav2lip
    # mouth), so 12; in float32 with all 8 frames, 8 epochs gave 0.958 and 0.875; 6 epochs
    # (with w_cmffc 0.5) attributed no wav2lip clip
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-2
    seed: int = 42
    split_seed: int = 42       # seed of the identity split, apart from the training seed
    num_workers: int = 0
    fp16: bool = True          # float16 mixed precision; only acts on CUDA
    # bfloat16 autocast when training on a CPU that computes bf16 natively (AVX512-BF16/AMX):
    # ~1.7x faster tiny steps on 2 cores; ignored on other CPUs and on CUDA (precision.CPUBFloat16)
    cpu_bf16: bool = True
    valid_frac: float = 0.2    # of identities
    test_frac: float = 0.2     # of identities
    holdout_methods: tuple[str, ...] = ()  # unseen-generator protocol: removed from train/valid
    augment: bool = True       # frame crop/flip/jitter + SpecAugment on the device
    spec_time_mask: int = 8    # max SpecAugment time-mask width (mel frames)
    spec_freq_mask: int = 8    # max SpecAugment frequency-mask height (mel bins)
    lr_find: bool = False
    # BatchNorm statistics recomputed from this many training batches before each validation
    # (train.PreciseBN; 0: off, the running averages of training as they are)
    precise_bn_batches: int = 8
    threads: int = 0           # torch CPU threads; 0 = leave torch's default


@dataclass
class Config:
    """The whole configuration of one run."""

    name: str = "tiny"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        def build(kls, values: dict[str, Any]):
            names = {f.name: f for f in dataclasses.fields(kls)}
            unknown = set(values) - set(names)
            if unknown:
                raise ValueError(f"unknown {kls.__name__} fields: {sorted(unknown)}")
            kwargs = {}
            for k, v in values.items():
                sub = _SECTIONS.get(k) if kls is Config else None
                if sub is not None:
                    kwargs[k] = build(sub, v)
                elif isinstance(v, list):
                    kwargs[k] = tuple(v)
                else:
                    kwargs[k] = v
            return kls(**kwargs)

        return build(cls, d)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def override(self, changes: dict[str, Any] | None) -> "Config":
        """A copy with dotted-key changes applied, e.g. ``{"train.epochs": 2}``.

        Values given as strings (from the command line) are converted to the field's type.
        """
        new = copy.deepcopy(self)
        for key, value in (changes or {}).items():
            section, _, name = key.partition(".")
            if not name:
                raise ValueError(f"override key {key!r} must look like 'section.field'")
            obj = getattr(new, section, None)
            if obj is None or not dataclasses.is_dataclass(obj):
                raise ValueError(f"unknown config section {section!r} in {key!r}")
            fields = {f.name: f for f in dataclasses.fields(obj)}
            if name not in fields:
                raise ValueError(f"unknown field {name!r} in section {section!r}; "
                                 f"choose from {sorted(fields)}")
            setattr(obj, name, _coerce(getattr(obj, name), value))
        return new

    def hash(self) -> str:
        """Short stable hash of the configuration (for the run registry)."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:10]


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


def _coerce(current: Any, value: Any) -> Any:
    if not isinstance(value, str):
        if isinstance(current, tuple) and isinstance(value, (list, tuple)):
            return tuple(value)
        return value
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float) or current is None:
        if current is None and value.lower() in ("none", "null", ""):
            return None
        return float(value)
    if isinstance(current, tuple):
        return tuple(v for v in value.split(",") if v)
    return value


def tiny() -> Config:
    """CPU configuration: the whole series in minutes on 2 cores (see module docstring)."""
    return Config(name="tiny")


def paper() -> Config:
    """The paper's full model, for a CUDA GPU."""
    return Config(
        name="paper",
        # frame_codec: JPEG q90 4:2:0. benchmarks/bench_store.py on the standard synthetic corpus
        # (16 identities, 40 videos): 10.0 kB per 224 px frame (stored without the shared
        # Huffman tables, see data/codec.py), a projected 14.7 GB for FakeAVCeleb's 21,566
        # videos at 4 clips each (raw 209 GB, PNG 73 GB). q85 would be about 20 % smaller,
        # but JPEG quantisation zeroes weak high frequencies first: the
        # demodulated checkerboard amplitude of fsgan-wav2lip crops (median, every 4th frame)
        # is 3.33 raw, 3.38 at q90 and 2.29 at q85 (real 0.07), and a +-6 level checkerboard
        # keeps under 70 % of its amplitude at q85 (tests/test_store.py). Real FSGAN traces are
        # weaker than the synthetic ones, so the kit keeps q90. The wav2lip low-res mouth
        # (traces.mouth_sharpness) is unchanged by either (0.266 vs real 0.455 at q90); the
        # blend seam is a luma + colour step feathered over ~3 px, above the 2-px colour
        # resolution of 4:2:0. Notebook 02 (4d) shows each trace before and after.
        # detect_every=16 with the tracked search (faces.TRACK_FACE_SIDE 32 px): the Haar
        # detector was 35 % of a video's preprocessing at 5. Against a full-resolution
        # detection on every frame (standard corpus, 40 videos), the interpolated face centre
        # is off by 2.3 / 1.9 px (x / y, mean; 95th percentile 5.5 / 4.7) and the side by
        # 3.5 px, for 9.9 ms per video; every 10th frame at 40 px: 1.7 / 1.4 px, side 5.3 px,
        # 13.8 ms. Either is well inside the 224 px window around a ~145 px face.
        data=DataConfig(n_frames=16, frame_stride=1, image_size=224, n_mels=80,
                        clips_per_video=4, frame_codec="jpeg", jpeg_quality=90,
                        jpeg_chroma="420", face_search="track", detect_every=16),
        model=ModelConfig(visual_backbone="resnet50", visual_stem="resnet", train_frames=0,
                          audio_backbone="resnet18",
                          pretrained=True, d_model=512, n_heads=8, n_temporal_layers=2,
                          d_embed=512, d_fingerprint=128, head_hidden=512, dropout=0.2),
        loss=LossConfig(),
        train=TrainConfig(epochs=30, batch_size=32, lr=3e-4, weight_decay=5e-2,
                          num_workers=8),
    )


CONFIGS = {"tiny": tiny, "paper": paper}


def get_config(name: str | Config = "tiny", overrides: dict[str, Any] | None = None) -> Config:
    """Look up a named config (``tiny`` or ``paper``) and apply dotted-key overrides."""
    if isinstance(name, Config):
        cfg = name
    else:
        if name not in CONFIGS:
            raise ValueError(f"unknown config {name!r}; choose from {sorted(CONFIGS)}")
        cfg = CONFIGS[name]()
    return cfg.override(overrides)

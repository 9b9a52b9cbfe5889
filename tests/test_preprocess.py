"""decode.clips_from_video (and the audio / video readers under it) on real media files (every skip reason, valid-but-unusual input),
and the preprocessing driver (process_one, the warm worker pool)."""
from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import media  # noqa: E402

from amdd_kit.config import DataConfig  # noqa: E402
from amdd_kit.data import audio as A  # noqa: E402
from amdd_kit.data import decode as D  # noqa: E402
from amdd_kit.data import preprocess as pp  # noqa: E402
from amdd_kit.data import video as V  # noqa: E402
from amdd_kit.data.decode import clips_from_video  # noqa: E402
from amdd_kit.data.video import SkipVideo  # noqa: E402

CFG = DataConfig()  # tiny: T=8, stride 2, 64x64, 64 mels, 0.64 s windows
SILENCE_FLOOR = float(np.float16(np.log(A.LOG_EPS)))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    f = {
        "good": media.write_video(d / "good.mp4"),
        "truncated": media.write_truncated(d / "truncated.mp4"),
        "zero": media.write_empty(d / "zero.mp4"),
        "text": media.write_text_as_video(d / "text.mp4"),
        "no_audio": media.write_video(d / "noaudio.mp4", audio=None),
        "audio_only": media.write_video(d / "audioonly.mp4", video=False),
        "wall": media.write_video(d / "wall.mp4", face=False),
        "short": media.write_video(d / "short.mp4", seconds=0.3),
        "silence": media.write_video(d / "silence.mp4", audio="silence"),
        "surround": media.write_video(d / "surround.mp4", fps=Fraction(30000, 1001), width=320,
                                      height=240, channels=6, sample_rate=48_000),
        "fps30": media.write_video(d / "fps30.mp4", fps=30),
        "wav": media.write_wav(d / "speech.wav", seconds=1.5, sample_rate=44_100, channels=2),
        "frames": media.write_frame_dir(d / "vid" / "sa1"),
        "late": media.write_video(d / "late.mp4", seconds=2.0, leading_silence=0.6),
    }
    return f


@pytest.mark.parametrize("name, reason", [
    ("truncated", "corrupt"), ("zero", "empty"), ("text", "corrupt"), ("no_audio", "no_audio"),
    ("audio_only", "no_video"), ("wall", "no_face"), ("short", "too_short"),
])
def test_broken_files_raise_skip_with_reason(files, name, reason):
    with pytest.raises(SkipVideo) as e:
        clips_from_video(files[name], CFG)
    assert e.value.reason == reason


def test_missing_file_and_frame_dir_without_audio(files, tmp_path):
    with pytest.raises(SkipVideo) as e:
        clips_from_video(tmp_path / "nope.mp4", CFG)
    assert e.value.reason == "missing"
    with pytest.raises(SkipVideo) as e:
        clips_from_video(files["frames"], CFG)
    assert e.value.reason == "no_audio"


def test_skipvideo_rejects_unknown_reason():
    with pytest.raises(ValueError, match="unknown skip reason"):
        SkipVideo("bogus")


def _check_shapes(c, cfg=CFG, k=None):
    k = cfg.clips_per_video if k is None else k
    assert c.frames.dtype == np.uint8 and c.frames.shape == (k, cfg.n_frames, 3, cfg.image_size,
                                                            cfg.image_size)
    assert c.mels.dtype == np.float16 and c.mels.shape == (k, cfg.n_mels, cfg.mel_frames)
    assert np.isfinite(c.mels.astype(np.float32)).all()
    w = cfg.window_seconds
    assert np.all(np.diff(c.starts) >= w - 1e-9), "windows overlap"


def test_good_video(files):
    c = clips_from_video(files["good"], CFG)
    _check_shapes(c)
    assert c.info["face_fraction"] == 1.0
    assert c.mels.max() > SILENCE_FLOOR + 5  # the tone is there
    # face crops are not the grey background: the face fills the crop
    assert c.frames.std() > 20


def test_digital_silence_gives_finite_floor(files):
    c = clips_from_video(files["silence"], CFG)
    _check_shapes(c)
    assert np.allclose(c.mels.astype(np.float32), SILENCE_FLOOR, atol=0.05)


def test_surround_48k_2997fps_nonsquare(files):
    with av.open(str(files["surround"])) as cont:
        assert cont.streams.audio[0].channels == 6 and cont.streams.audio[0].rate == 48_000
    c = clips_from_video(files["surround"], CFG)
    _check_shapes(c)
    assert abs(c.info["src_fps"] - 29.97) < 0.01
    assert c.mels.max() > SILENCE_FLOOR + 5


def test_external_wav_and_frame_folder(files):
    c = clips_from_video(files["no_audio"], CFG, audio_path=files["wav"])
    _check_shapes(c)
    d = clips_from_video(files["frames"], CFG, audio_path=files["wav"])
    _check_shapes(d)
    assert d.mels.max() > SILENCE_FLOOR + 5


def test_load_audio_downmixes_and_resamples(files):
    x, t0 = A.load_audio(files["wav"], 16_000)
    assert x.ndim == 1 and x.dtype == np.float32
    assert abs(len(x) - 1.5 * 16_000) <= 32
    # the tone is 220 Hz: its spectral peak survives resampling from 44.1 kHz stereo
    spec = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spec) * 16_000 / len(x) - 220) < 5


def test_resampling_picks_nearest_frame_by_timestamp(tmp_path):
    """A 30 fps video whose frame i has grey level 8*i: the 25 fps grid takes round(t*30)."""
    path = tmp_path / "ramp.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        vs.options = {"preset": "ultrafast", "qp": "0"}
        for i in range(30):
            img = np.full((64, 64, 3), 8 * i, np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    targets = np.arange(0, 25) / 25.0
    frames, dur, covered, fps = V.pick_frames(path, targets)
    got = np.array([f.mean() / 8 for f in frames])
    assert covered and abs(fps - 30) < 1e-6
    np.testing.assert_allclose(got, np.round(targets * 30), atol=0.3)


def test_log_mel_is_aligned_with_the_window():
    cfg = CFG
    sr = cfg.sample_rate
    x = np.zeros(2 * sr, np.float32)
    burst = int(0.30 * sr)
    x[burst:burst + 80] = np.hanning(80)  # a 5 ms click at 0.30 s
    mel = A.log_mel_windows(x, np.array([0.20]), cfg).astype(np.float32)[0]
    assert mel.shape == (cfg.n_mels, cfg.mel_frames)
    col = int(np.argmax(mel.sum(axis=0)))
    assert abs(col - 10) <= 1  # (0.30 - 0.20) s * 100 columns/s


def test_plan_windows_non_overlapping_inside_video():
    cfg = DataConfig(clips_per_video=3)
    win = cfg.n_frames * cfg.frame_stride
    s = D.plan_windows(5.0, 0.5, cfg)
    assert len(s) == 3
    assert s[0] >= round(0.5 * cfg.fps) and s[-1] + win <= 5.0 * cfg.fps
    assert np.all(np.diff(s) >= win)
    assert len(D.plan_windows(0.5, 0.0, cfg)) == 0
    assert len(D.plan_windows(1.0, 0.0, cfg)) == 1


def test_trim_silence_moves_windows_past_leading_silence(files):
    plain = clips_from_video(files["late"], CFG)
    trimmed = clips_from_video(files["late"], DataConfig(trim_silence=True))
    assert plain.starts[0] < 0.5
    assert trimmed.info["offset"] == pytest.approx(0.6, abs=0.05)
    assert trimmed.starts[0] >= 0.6 - 1 / CFG.fps
    # the first window of the trimmed clip carries sound from its first columns on
    first = trimmed.mels[0].astype(np.float32)
    assert first[:, :8].max() > SILENCE_FLOOR + 5


def test_leading_silence_measure():
    sr = 16_000
    x = np.r_[np.zeros(sr // 2), 0.5 * np.ones(sr)].astype(np.float32)
    assert A.leading_silence(x, sr, -40) == pytest.approx(0.5, abs=0.011)
    assert A.leading_silence(np.zeros(sr, np.float32), sr, -40) == 0.0


def test_process_one_never_raises(files, tmp_path, monkeypatch):
    cfgd = CFG.__dict__.copy()
    vid, n, reason, _ = pp.process_one("v1", str(files["text"]), None, cfgd, str(tmp_path))
    assert (n, reason) == (0, "corrupt")
    assert json.loads((tmp_path / "v1.skip.json").read_text())["reason"] == "corrupt"

    def boom(*a, **k):
        raise RuntimeError("decoder exploded")
    monkeypatch.setattr(pp, "clips_from_video", boom)
    vid, n, reason, detail = pp.process_one("v2", str(files["good"]), None, cfgd, str(tmp_path))
    assert reason == "error" and "decoder exploded" in detail
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_tracked_face_search_agrees_with_the_full_search():
    from amdd_kit.data import faces
    frames = [media.face_frame(300, 224, shift=s) for s in range(-24, 25, 4)]
    full = faces.detect_faces(frames, every=2)
    tracked = faces.detect_faces(frames, every=2, track=True)
    assert full.face_fraction == tracked.face_fraction == 1.0
    err = np.abs(full.boxes - tracked.boxes)
    assert err[:, :2].max() <= 6 and err[:, 2].max() <= 0.15 * full.boxes[:, 2].mean()
    # the face moves right with the shift, in both
    assert tracked.boxes[-1, 0] - tracked.boxes[0, 0] > 30
    x, y, w, h = faces.haar_face(frames[0])
    near = faces.haar_face_near(frames[0], (x + w / 2, y + h / 2, w))
    assert near is not None and abs(near[0] - x) <= 6 and abs(near[2] - w) <= 0.2 * w
    # nothing to find far from the face: None (the caller then searches the whole frame)
    assert faces.haar_face_near(np.full((224, 224, 3), 90, np.uint8), (112, 112, 100)) is None


def test_keep_pool_reuses_the_workers(files, tmp_path):
    root = tmp_path
    for name in ("good", "fps30"):
        (root / files[name].name).write_bytes(files[name].read_bytes())
    (tmp_path / "list.csv").write_text("path,label,method,identity\n"
                                       "good.mp4,0,real,p1\nfps30.mp4,0,real,p2\n")
    from amdd_kit.data.preprocess import preprocess_dataset
    try:
        s1 = preprocess_dataset("csv", root, tmp_path / "a", CFG, workers=2, progress=False,
                                keep_pool=True)
        pool = pp._WARM[2]
        s2 = preprocess_dataset("csv", root, tmp_path / "b", CFG, workers=2, progress=False,
                                keep_pool=True)
        assert pp._WARM[2] is pool and s1.clips == s2.clips > 0
    finally:
        pp.close_pools()
    assert not pp._WARM


def test_native_crop_copies_pixels_and_keeps_a_checkerboard():
    """The face fits the crop: the crop is a window of source pixels (no interpolation), so a
    2-px checkerboard survives; the classic resize of a larger box averages it away."""
    from amdd_kit.data.faces import crop_faces, crop_scale

    rng = np.random.default_rng(0)
    frame = rng.integers(60, 200, (72, 72, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0:72, 0:72]
    cb = np.clip(frame + 6 * np.where((xx + yy) % 2 == 0, 1, -1)[..., None], 0, 255).astype(np.uint8)
    boxes = np.array([[36.0, 36.0, 50.0]] * 2)
    assert crop_scale(boxes, 64, 0.25, "native") == 1.0
    native = crop_faces([cb, cb], boxes, 64, 0.25, "native")
    assert np.array_equal(native[0], cb[4:68, 4:68])
    resized = crop_faces([cb, cb], boxes, 64, 0.25, "resize")      # 75 px box -> 64 px
    sign = np.where((xx[:64, :64] + yy[:64, :64]) % 2 == 0, 1, -1)[..., None]
    energy = lambda c: abs(float((c.astype(float) * sign).mean()))
    assert energy(native[0]) > 4 and energy(resized[0]) < 0.5 * energy(native[0])
    for b in (boxes, [[20.0, 60.0, 50.0]] * 2, [[-90.0, 0.0, 50.0]] * 2):  # inside, edge, out
        for mode in ("native", "resize"):  # the store's channels-first layout: the same pixels
            hwc = crop_faces([cb, cb[::-1]], np.array(b), 64, 0.25, mode)
            chw = crop_faces([cb, cb[::-1]], np.array(b), 64, 0.25, mode, channels_first=True)
            np.testing.assert_array_equal(chw, hwc.transpose(0, 3, 1, 2))
    big = np.array([[36.0, 36.0, 70.0]] * 2)                       # face larger than the crop
    assert crop_scale(big, 64, 0.25, "native") < 1.0
    with pytest.raises(ValueError, match="crop mode"):
        crop_scale(boxes, 64, 0.25, "zoom")


def _threads() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_frame_decoding_stays_on_one_thread(files):
    """A preprocessing worker is one thread: the decoder and the rgb conversion (swscale,
    whose PyAV default is one thread per CPU) start no threads of their own. With them, two
    workers on two cores waited on each other's threads (2 workers / 1 worker: 1.31x; 1.91x
    without)."""
    import threading
    import time

    before, seen, stop = _threads(), [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(_threads())
            time.sleep(0.0005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        for _ in range(6):
            for name in ("surround", "good", "fps30"):
                V.pick_frames(files[name], np.linspace(0.0, 1.0, 12))
    finally:
        stop.set()
        t.join()
    assert len(seen) > 20
    assert max(seen) <= before + 1, f"decoding started {max(seen) - before - 1} threads"


def test_a_video_file_is_opened_once_and_its_frames_do_not_depend_on_it(files, monkeypatch):
    """clips_from_video probes an mp4 once (audio, then video, from one container: each open
    costs ~1.5 ms of a ~55 ms video), and the frames picked after the audio was read from that
    container are the frames a fresh open gives (it is rewound first)."""
    targets = np.linspace(0.0, 1.0, 12)
    with av.open(str(files["surround"])) as c:
        A.audio_of(c, files["surround"], 16_000)  # reads the container to its end
        reused, dur, covered, fps = V.pick_frames(files["surround"], targets, c)
    fresh, dur0, covered0, fps0 = V.pick_frames(files["surround"], targets)
    assert (dur, covered, fps) == (dur0, covered0, fps0)
    for a, b in zip(reused, fresh):
        np.testing.assert_array_equal(a, b)

    opened = []
    real_open = av.open
    monkeypatch.setattr(V.av, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    clips = clips_from_video(files["good"], CFG)
    assert len(clips) >= 1 and opened == [str(files["good"])]


def test_audio_is_decoded_only_as_far_as_the_windows_need(tmp_path, monkeypatch):
    """Without trim_silence the windows are planned from the header's duration, so the audio
    decode stops after the last window: same log-mels as from the whole track, fewer samples
    decoded (a 6 s video, two 0.64 s windows)."""
    path = media.write_video(tmp_path / "long.mp4", seconds=6.0)
    decoded = []
    real = A._decode_audio_swr
    monkeypatch.setattr(A, "_decode_audio_swr",
                        lambda *a, **k: decoded.append(real(*a, **k)) or decoded[-1])
    clips = clips_from_video(path, CFG)
    full, t0 = A.load_audio(path, CFG.sample_rate)
    assert len(decoded[0][0]) < 0.5 * len(full)
    with av.open(str(path)) as c:
        v_start = float(c.streams.video[0].start_time * c.streams.video[0].time_base)
    np.testing.assert_array_equal(clips.mels,
                                  A.log_mel_windows(full, clips.starts, CFG, t0 - v_start))
    trim = DataConfig(trim_silence=True)  # the silence threshold needs the whole track
    clips_from_video(path, trim)
    assert len(decoded[-1][0]) == len(full)

"""Unit tests of amdd_kit.traces on constructed arrays whose answer is known."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from amdd_kit import traces as T


def _smooth_frames(rng: np.random.Generator, t: int = 4, size: int = 64) -> np.ndarray:
    """Natural-ish frames: smooth random blobs, uint8 [T, 3, H, W]."""
    import cv2

    out = []
    for _ in range(t):
        small = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        out.append(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))
    return np.clip(np.stack(out), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)


def test_mean_log_mel_by_method_averages_per_method():
    mels = np.zeros((4, 3, 5), np.float16)
    mels[0] = 1.0
    mels[1] = 3.0            # method a: mean 2
    mels[2, 0] = 6.0         # method b: bin 0 = (6 + 0) / 2, others 0
    methods = ["a", "a", "b", "b"]
    df = T.mean_log_mel_by_method(mels, methods)
    assert list(df.index) == ["a", "b"] and df.index.name == "method"
    assert df.shape == (2, 3)
    np.testing.assert_allclose(df.loc["a"].to_numpy(), [2, 2, 2])
    np.testing.assert_allclose(df.loc["b"].to_numpy(), [3, 0, 0])
    with pytest.raises(ValueError):
        T.mean_log_mel_by_method(mels, ["a"])


def test_high_band_energy_sees_a_low_pass():
    n_mels, s = 64, 10
    freqs = T.mel_bin_frequencies(n_mels, 20, 8000)
    full = np.zeros((n_mels, s), np.float32)
    cut = full.copy()
    cut[freqs >= 5000] = -10.0           # energy removed above 5 kHz
    hb = T.high_band_energy(np.stack([full, cut]), 5000, 20, 8000)
    assert hb[0] == pytest.approx(0.0, abs=1e-6)
    frac = (freqs >= 5000).mean()
    assert hb[1] == pytest.approx(-10 + 10 * frac, rel=1e-4)
    assert isinstance(T.high_band_energy(full, 5000, 20, 8000), float)


def test_frame_spectrum_shape_and_checkerboard_peak():
    rng = np.random.default_rng(0)
    natural = _smooth_frames(rng)
    yy, xx = np.mgrid[0:64, 0:64]
    checker = np.where((xx + yy) % 2 == 0, 4.0, -4.0)
    stripes = np.where(xx % 2 == 0, 4.0, -4.0)
    with_checker = np.clip(natural + checker[None, None], 0, 255).astype(np.uint8)
    with_stripes = np.clip(natural + stripes[None, None], 0, 255).astype(np.uint8)
    spec = T.frame_spectrum(with_checker)
    assert spec.shape == (64, 64)
    # after fftshift the diagonal Nyquist frequency sits in the corner [0, 0]
    assert spec[0, 0] > np.median(spec) + 2
    base, cb, st = (T.checkerboard_score(f) for f in (natural, with_checker, with_stripes))
    assert base < 6.0
    assert cb > base + 15 and st > base + 15


def test_mouth_envelope_correlation_finds_the_lag():
    rng = np.random.default_rng(1)
    t_frames, lag = 24, 2
    env = rng.uniform(0, 1, t_frames + lag)
    speech = env[lag:]                   # speech at frame t ...
    mouth = env[:t_frames]               # ... opens the mouth at frame t + lag
    frames = np.full((t_frames, 3, 32, 32), 200, np.uint8)
    for i, m in enumerate(mouth):        # darker lower-centre = more open
        frames[i, :, 16:24, 11:21] = int(200 - 150 * m)
    mel = np.repeat(speech, 4)[None, :].repeat(16, axis=0)        # [16, 4 * T]
    corr, best = T.mouth_envelope_correlation(frames, mel, max_lag=3)
    assert best == lag
    assert corr > 0.99
    shuffled = mel[:, rng.permutation(mel.shape[1])]
    corr2, _ = T.mouth_envelope_correlation(frames, shuffled, max_lag=0)
    assert corr2 < 0.6
    flat = np.full_like(frames, 100)
    assert np.isnan(T.mouth_envelope_correlation(flat, mel)[0])


def test_speech_envelope_from_mel_resamples_to_frames():
    mel = np.tile(np.arange(8, dtype=np.float32).repeat(4), (3, 1))  # [3, 32], frame k -> k
    np.testing.assert_allclose(T.speech_envelope_from_mel(mel, 8), np.arange(8))


def test_leading_silence_on_arrays():
    sr = 16000
    rng = np.random.default_rng(2)
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)
    wave = np.r_[1e-4 * rng.normal(0, 1, int(0.3 * sr)), tone].astype(np.float32)
    assert T.leading_silence_seconds(wave, sample_rate=sr) == pytest.approx(0.3, abs=0.021)
    assert T.leading_silence_seconds(tone, sample_rate=sr) == 0.0
    stereo = np.stack([wave, wave], axis=1)
    assert T.leading_silence_seconds(stereo, sample_rate=sr) == pytest.approx(0.3, abs=0.021)
    # a threshold below the noise floor (-74 dB here) counts the noise as sound
    assert T.leading_silence_seconds(wave, threshold_db=-90, sample_rate=sr) == 0.0
    with pytest.raises(TypeError):                     # a waveform without its rate
        T.leading_silence_seconds(wave)


def test_leading_silence_on_a_media_file(tmp_path):
    from amdd_kit.data.audio import native_audio
    from amdd_kit.data.synthetic import write_video
    from amdd_kit.data.video import first_frames

    sr = 22050
    audio = np.zeros((int(1.0 * sr), 1), np.float32)
    start = int(0.25 * sr)
    audio[start:, 0] = 0.4 * np.sin(2 * np.pi * 300 * np.arange(len(audio) - start) / sr)
    frames = np.full((25, 32, 32, 3), 128, np.uint8)
    path = tmp_path / "clip.mp4"
    write_video(path, frames, Fraction(25), audio, sr)
    wave, got_sr = native_audio(path)
    assert got_sr == sr and abs(len(wave) - sr) < 3000
    assert T.leading_silence_seconds(wave, got_sr) == pytest.approx(0.25, abs=0.045)
    frames[:, 8:24, 8:24] = 40                         # a dark square in the centre
    silent = tmp_path / "silent.mp4"
    write_video(silent, frames, Fraction(25))
    native = T.centre_crop(first_frames(silent, 5), crop=0.5)
    assert native.shape == (5, 3, 16, 16) and native.dtype == np.uint8
    assert abs(float(native.mean()) - 40) < 6
    with pytest.raises(ValueError, match="no audio"):
        native_audio(silent)


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001)])
def test_one_reader_gives_both_callers_the_frames_pyav_decodes(tmp_path, fps):
    """Notebook 02's native frames (``data.video.first_frames``) and preprocessing's frames
    (``data.video.pick_frames`` on the source's own frame times) come from one PyAV reader: on
    an mp4 of the synthetic corpus (``make_video``) both are exactly the frames a plain PyAV
    decode loop gives, also when the video holds fewer frames than asked for."""
    import av

    from amdd_kit.data.synthetic import VideoSpec, make_video
    from amdd_kit.data.video import first_frames, pick_frames

    spec = VideoSpec(rel="fsgan.mp4", method="fsgan", ident=1, seed=3, fake_seed=3,
                     corpus_seed=0, width=72, height=72, fps=fps, sr=16000, channels=1,
                     duration=0.6, donor=2)
    path = tmp_path / make_video(spec, tmp_path)
    with av.open(str(path)) as c:
        plain = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    n = len(plain)
    assert n >= 15 and plain.std() > 10  # a real picture, not a flat frame
    np.testing.assert_array_equal(first_frames(path, 12), plain[:12])
    np.testing.assert_array_equal(first_frames(path, n + 10), plain)
    np.testing.assert_array_equal(T.centre_crop(plain[:3]), plain[:3].transpose(0, 3, 1, 2))
    picked, duration, covered, src_fps = pick_frames(path, np.arange(n) / float(fps))
    np.testing.assert_array_equal(np.stack(picked), plain)
    assert covered and src_fps == pytest.approx(float(fps))
    assert duration == pytest.approx(n / float(fps), abs=1e-6)


def test_group_means_and_correlation_equal_the_hand_written_ones_they_replaced():
    """``mean_log_mel_by_method`` is a pandas groupby and ``_corr`` is ``np.corrcoef``; the old
    loops, written out here, give the same numbers on random batches."""
    rng = np.random.default_rng(0)
    mels = rng.normal(size=(30, 8, 6)).astype(np.float16)
    methods = rng.choice(["real", "rtvc", "fsgan", "wav2lip"], 30)
    per_clip = mels.astype(np.float32).mean(axis=2)
    order = list(dict.fromkeys(methods.tolist()))
    old = pd.DataFrame.from_dict({m: per_clip[methods == m].mean(axis=0) for m in order},
                                 orient="index")
    new = T.mean_log_mel_by_method(mels, methods)
    assert list(new.index) == order and list(new.columns) == list(old.columns)
    np.testing.assert_allclose(new.to_numpy(), old.to_numpy(), rtol=1e-6, atol=1e-6)

    def old_corr(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))

    for n in (3, 8, 30):
        a = rng.normal(size=n).astype(np.float32)
        b = (0.5 * a + rng.normal(size=n)).astype(np.float32)
        assert T._corr(a, b) == pytest.approx(old_corr(a, b), abs=1e-5)
    flat = np.full(8, 3.0, np.float32)
    assert np.isnan(T._corr(flat, a[:8])) and np.isnan(T._corr(a[:2], b[:2]))


def test_traces_measures_arrays_and_opens_no_file():
    """``traces`` takes frames and waveforms; reading a file is the data layer's job
    (``data.video``, ``data.audio``): no function of ``traces`` calls a reader or opens a path."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(T))
    called = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    readers = {"open", "open_media", "first_frames", "pick_frames", "native_audio", "load_audio",
               "imread", "VideoCapture", "read_parquet", "read_csv"}
    assert not called & readers, sorted(called & readers)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert not imported & (readers | {"av", "Path"}), sorted(imported & (readers | {"av", "Path"}))


def test_centre_crop_keeps_the_centre_in_the_store_layout():
    rgb = np.zeros((2, 8, 12, 3), np.uint8)
    rgb[:, 2:6, 3:9] = [10, 20, 30]                  # the central half of height and width
    out = T.centre_crop(rgb, crop=0.5)
    assert out.shape == (2, 3, 4, 6) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out[:, :, 0, 0], [[10, 20, 30]] * 2)
    assert T.centre_crop(rgb, crop=1.0).shape == (2, 3, 8, 12)
    with pytest.raises(ValueError, match="first_frames"):
        T.centre_crop(rgb.transpose(0, 3, 1, 2))   # already [T, 3, H, W]


def test_crop_comparison_on_frames_native_copies_source_pixels(tmp_path):
    """``crop_comparison`` takes the frames ``first_frames`` returns; its ``native`` crop of a
    synthetic fsgan video is a window of source pixels, its ``resize`` crop is not."""
    from amdd_kit.config import get_config
    from amdd_kit.data.synthetic import VideoSpec, make_video
    from amdd_kit.data.video import first_frames

    spec = VideoSpec(rel="fsgan.mp4", method="fsgan", ident=1, seed=3, fake_seed=3,
                     corpus_seed=0, width=72, height=72, fps=Fraction(25), sr=16000, channels=1,
                     duration=0.6, donor=2)
    rgb = first_frames(tmp_path / make_video(spec, tmp_path), 4)
    dc = get_config("tiny").data
    crops = T.crop_comparison(rgb, dc)
    s = dc.image_size
    assert {k: v.shape for k, v in crops.items()} == {"native": (4, 3, s, s), "resize": (4, 3, s, s)}
    win = np.lib.stride_tricks.sliding_window_view(rgb[0], (s, s), axis=(0, 1))  # [y, x, 3, s, s]
    hits = (win == crops["native"][0][None, None]).all(axis=(2, 3, 4))
    assert hits.any(), "the native crop is not a window of the source frame"
    assert not (win == crops["resize"][0][None, None]).all(axis=(2, 3, 4)).any()


def test_leading_silence_table_reads_each_video_once_and_records_failures(tmp_path):
    """The corpus-wide table (``experiments.shortcut.leading_silence_table``) reads each file
    with ``data.audio.native_audio`` and measures it with ``traces.leading_silence_seconds``;
    an unreadable file is a NaN row with its reason, not a crash."""
    from amdd_kit.data.synthetic import write_video
    from amdd_kit.experiments.shortcut import leading_silence_table

    sr = 16000
    audio = np.zeros((sr, 1), np.float32)
    audio[int(0.2 * sr):, 0] = 0.4 * np.sin(2 * np.pi * 300 * np.arange(int(0.8 * sr)) / sr)
    write_video(tmp_path / "a.mp4", np.full((25, 32, 32, 3), 128, np.uint8), Fraction(25), audio, sr)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    man = pd.DataFrame({"path": ["a.mp4", "a.mp4", "broken.mp4"], "method": ["rtvc"] * 3,
                        "label": [1, 1, 1]})
    t = leading_silence_table(tmp_path, man, -40.0)
    assert list(t["path"]) == ["a.mp4", "broken.mp4"]
    assert t.loc[0, "leading_silence_s"] == pytest.approx(0.2, abs=0.045) and t.loc[0, "error"] == ""
    assert np.isnan(t.loc[1, "leading_silence_s"]) and "corrupt" in t.loc[1, "error"]

"""Audio decoding edge cases and mel features against the reference recipe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from portrait_studio.errors import InputError
from portrait_studio.media.audio import decode_audio
from portrait_studio.talk.audio_features import audio_features, frame_count, mel_filterbank, melspectrogram
from tests.talk._audio_helpers import tone, write_pcm_wav
from tests.talk._golden_inputs import FIXTURES


def test_stereo_48k_is_downmixed_and_resampled(tmp_path: Path) -> None:
    left, right = tone(1.0, 48_000, 220), tone(1.0, 48_000, 330)
    path = write_pcm_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 48_000)
    audio = decode_audio(path, max_seconds=60)
    assert audio.sample_rate == 16_000
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration - 1.0) < 0.01
    # both channels survive the downmix: the spectrum peaks at 220 Hz and 330 Hz
    spectrum = np.abs(np.fft.rfft(audio.samples))
    freqs = np.fft.rfftfreq(audio.samples.size, 1 / 16_000)
    top_two = sorted(freqs[np.argsort(spectrum)[-2:]].round())
    assert top_two == [220.0, 330.0]


def test_8_bit_wav_decodes(tmp_path: Path) -> None:
    path = write_pcm_wav(tmp_path / "u8.wav", tone(0.8, 8_000), 8_000, sample_width=1)
    audio = decode_audio(path, max_seconds=60)
    assert abs(audio.duration - 0.8) < 0.01
    assert abs(float(audio.samples.mean())) < 0.02  # unsigned 8-bit is centred, not offset


@pytest.mark.parametrize("ext", ["mp3", "m4a", "ogg", "flac"])
def test_compressed_formats_decode(tmp_path: Path, speech_wav: Path, ext: str) -> None:
    import imageio_ffmpeg

    target = tmp_path / f"speech.{ext}"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(speech_wav), str(target)],
                   check=True, timeout=60)
    reference = decode_audio(speech_wav, max_seconds=60)
    audio = decode_audio(target, max_seconds=60)
    assert abs(audio.duration - reference.duration) < 0.1  # codecs pad a few ms


def test_silence_is_rejected(tmp_path: Path) -> None:
    path = write_pcm_wav(tmp_path / "silence.wav", np.zeros(16_000, np.float32), 16_000)
    with pytest.raises(InputError, match="silent"):
        decode_audio(path, max_seconds=60)


def test_too_short_is_rejected(tmp_path: Path) -> None:
    path = write_pcm_wav(tmp_path / "short.wav", tone(0.2, 16_000), 16_000)
    with pytest.raises(InputError, match=r"short\.wav is only 0\.20 s"):
        decode_audio(path, max_seconds=60)


def test_too_long_is_rejected_with_the_limit(tmp_path: Path) -> None:
    path = write_pcm_wav(tmp_path / "long.wav", tone(3.0, 16_000), 16_000)
    with pytest.raises(InputError, match="longer than the limit of 2 seconds"):
        decode_audio(path, max_seconds=2)


def test_corrupt_and_empty_files_are_rejected(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    with pytest.raises(InputError, match="broken.wav"):
        decode_audio(corrupt, max_seconds=60)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        decode_audio(empty, max_seconds=60)
    with pytest.raises(InputError, match="not found"):
        decode_audio(tmp_path / "missing.wav", max_seconds=60)


# Precision argument for the mel golden (numpy, so torch's kernel paths do not apply): the reference ran in
# float32, and so do we. Each output value comes from one 800-point FFT and one 401-term dot product, whose
# float32 error, in any summation order, is below (401 + 10) x 6e-8 = 2.5e-5 relative on the band energy; the
# dB conversion (8.7 dB per unit of relative error) and the normalisation (0.08 per dB) turn that into at most
# 2e-5 on values in [-4, 4]. Measured: 3.1e-5 between our run and the fixture, 1.9e-5 between the fixture and
# a float64 computation. MEL_ATOL = 2e-4 covers both sides' rounding on any machine with margin; a wrong step
# of the recipe is off by 0.08 or more (test_a_wrong_step_of_the_recipe_fails_the_mel_golden).
MEL_ATOL = 2e-4


def _golden_test_wav() -> np.ndarray:
    sr = 16_000
    t = np.arange(int(1.37 * sr)) / sr
    wav = (0.4 * np.sin(2 * np.pi * (180 + 900 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
           + 0.2 * np.sin(2 * np.pi * 2400 * t)).astype(np.float32)
    wav[int(1.1 * sr):] *= 0.001
    return wav


def _assert_mel_matches_golden() -> None:
    wav = _golden_test_wav()
    with np.load(FIXTURES / "mel_golden.npz") as golden:
        windows, frames = audio_features(wav)
        assert frames == int(golden["num_frames"]) == frame_count(len(wav))
        mel = melspectrogram(wav[: frames * 640])
        np.testing.assert_allclose(mel, golden["mel"], atol=MEL_ATOL)
        np.testing.assert_allclose(windows[:3], golden["windows_head"], atol=MEL_ATOL)
        np.testing.assert_allclose(windows[-2:], golden["windows_tail"], atol=MEL_ATOL)
    assert windows.shape == (frames, 80, 16)


def test_mel_matches_reference_recipe() -> None:
    """Reference mels were computed once with the published audio code (librosa 0.9.2)."""
    _assert_mel_matches_golden()


def _symmetric_hann(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "wrong"),
    [("PREEMPHASIS", 0.95), ("_hann_periodic", _symmetric_hann), ("REF_LEVEL_DB", 21.0)],
)
def test_a_wrong_step_of_the_recipe_fails_the_mel_golden(monkeypatch: pytest.MonkeyPatch, name: str, wrong) -> None:
    from portrait_studio.talk import audio_features as recipe

    monkeypatch.setattr(recipe, name, wrong)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        _assert_mel_matches_golden()


def test_filterbank_against_librosa_if_installed() -> None:
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    np.testing.assert_allclose(mel_filterbank(), expected, rtol=1e-4, atol=1e-7)

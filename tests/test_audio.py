"""ge2e_jax.audio against float64 NumPy references and hand-made bad files."""

import numpy as np
import pytest
import soundfile as sf

from ge2e_jax import audio


def _tone(freq, seconds, sr, amplitude=0.5):
  t = np.arange(int(round(seconds * sr))) / sr
  return amplitude * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("flac", "PCM_16"),
                                         ("wav", "FLOAT")])
def test_read_audio_returns_the_written_samples(tmp_path, fmt, subtype):
  rng = np.random.default_rng(0)
  ints = rng.integers(-20000, 20000, size=3000)
  path = tmp_path / f"x.{fmt}"
  sf.write(path, ints / 32768.0, 22050, subtype=subtype)
  wav, sr = audio.read_audio(path)
  assert sr == 22050 and wav.dtype == np.float32 and wav.shape == (3000,)
  np.testing.assert_allclose(wav, ints / 32768.0, atol=1e-7)


def test_read_audio_of_ogg_is_close_to_the_original(tmp_path):
  ref = _tone(300, 1.0, 16000)
  sf.write(tmp_path / "x.ogg", ref, 16000, format="OGG", subtype="VORBIS")
  wav, sr = audio.read_audio(tmp_path / "x.ogg")
  assert sr == 16000
  n = min(len(wav), len(ref))
  assert np.corrcoef(wav[1000:n - 1000], ref[1000:n - 1000])[0, 1] > 0.99


def test_read_audio_mixes_stereo_down_to_the_channel_mean(tmp_path):
  left, right = _tone(440, 0.5, 8000, 0.6), _tone(1000, 0.5, 8000, 0.2)
  sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 8000, subtype="FLOAT")
  wav, _ = audio.read_audio(tmp_path / "s.wav")
  np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-6)


def _wav_bytes(tmp_path):
  sf.write(tmp_path / "good.wav", _tone(440, 0.5, 16000), 16000, subtype="PCM_16")
  return (tmp_path / "good.wav").read_bytes()


@pytest.mark.parametrize("name,make,reason", [
    ("empty.wav", lambda b: b"", "empty"),
    ("header.wav", lambda b: b[:30], "truncated"),
    ("half.wav", lambda b: b[:len(b) // 2], "truncated: data chunk declares 16000 bytes"),
    ("noise.wav", lambda b: np.random.default_rng(1).bytes(3000), "not a readable audio"),
    ("notes.txt", lambda b: b"hello, not audio\n", "not a readable audio"),
])
def test_bad_files_raise_audio_read_error_naming_file_and_reason(tmp_path, name, make, reason):
  path = tmp_path / name
  path.write_bytes(make(_wav_bytes(tmp_path)))
  with pytest.raises(audio.AudioReadError) as info:
    audio.read_audio(path)
  assert info.value.path == str(path)
  assert reason in info.value.reason
  assert str(path) in str(info.value)


def test_missing_file_and_nan_samples_raise(tmp_path):
  with pytest.raises(audio.AudioReadError, match="no such file"):
    audio.read_audio(tmp_path / "absent.wav")
  sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2]), 16000, subtype="FLOAT")
  with pytest.raises(audio.AudioReadError, match="NaN"):
    audio.read_audio(tmp_path / "nan.wav")


def test_decode_audio_reads_bytes_like_a_file(tmp_path):
  data = _wav_bytes(tmp_path)
  wav, sr = audio.decode_audio(data)
  ref, _ = audio.read_audio(tmp_path / "good.wav")
  assert sr == 16000
  np.testing.assert_array_equal(wav, ref)


@pytest.mark.parametrize("orig_sr", [44100, 22050, 48000, 8000])
def test_resample_matches_the_analytic_tone(orig_sr):
  freq, seconds = 440.0, 0.5
  out = audio.resample(_tone(freq, seconds, orig_sr), orig_sr, 16000)
  assert out.dtype == np.float32
  assert abs(len(out) - seconds * 16000) <= 1
  ref = _tone(freq, len(out) / 16000, 16000)[:len(out)]
  edge = 400  # The polyphase filter's transient at both ends.
  np.testing.assert_allclose(out[edge:-edge], ref[edge:-edge], atol=2e-3)
  spectrum = np.abs(np.fft.rfft(out))
  assert abs(np.argmax(spectrum) * 16000 / len(out) - freq) < 16000 / len(out)


def test_resample_keeps_channels_and_identity_copies():
  stereo = np.stack([_tone(440, 0.1, 44100), _tone(880, 0.1, 44100)], 1)
  assert audio.resample(stereo, 44100, 16000).shape == (1600, 2)
  x = np.ones(10, np.float32)
  y = audio.resample(x, 16000, 16000)
  y[0] = 5
  assert x[0] == 1
  with pytest.raises(ValueError, match="positive"):
    audio.resample(x, 0, 16000)


def test_to_mono():
  x = np.array([[1.0, 0.0], [0.5, -0.5]])
  np.testing.assert_allclose(audio.to_mono(x), [0.5, 0.0])
  np.testing.assert_array_equal(audio.to_mono(np.arange(3.0)), [0, 1, 2])
  with pytest.raises(ValueError, match="samples"):
    audio.to_mono(np.zeros((2, 2, 2)))


def _padded_tone(sr, lead_s, tone_s, trail_s, noise_db=-70.0):
  rng = np.random.default_rng(0)
  tone = _tone(440, tone_s, sr, 0.5)
  wav = np.concatenate([np.zeros(int(lead_s * sr)), tone, np.zeros(int(trail_s * sr))])
  return wav + 0.5 * 10 ** (noise_db / 20) * rng.standard_normal(len(wav))


@pytest.mark.parametrize("pad_ms", [0.0, 40.0])
def test_trim_silence_cuts_known_padding_within_a_frame(pad_ms):
  sr, frame_ms = 16000, 20.0
  wav = _padded_tone(sr, 0.7, 1.0, 1.3)
  trimmed, (start, end) = audio.trim_silence(wav, sr, top_db=40, frame_ms=frame_ms,
                                             pad_ms=pad_ms)
  frame, pad = int(sr * frame_ms / 1000), int(sr * pad_ms / 1000)
  assert abs(start - (int(0.7 * sr) - pad)) <= frame
  assert abs(end - (int(1.7 * sr) + pad)) <= frame
  np.testing.assert_array_equal(trimmed, wav[start:end].astype(np.float32))


def test_trim_silence_threshold_is_configurable():
  sr = 16000
  quiet = _tone(300, 0.5, sr, 0.5 * 10 ** (-30 / 20))  # 30 dB under the loud part.
  wav = np.concatenate([np.zeros(sr // 2), quiet, _tone(440, 0.5, sr, 0.5)])
  _, (start_40, _) = audio.trim_silence(wav, sr, top_db=40, pad_ms=0)
  _, (start_20, _) = audio.trim_silence(wav, sr, top_db=20, pad_ms=0)
  assert abs(start_40 - sr // 2) <= 320  # The quiet part is kept as speech...
  assert abs(start_20 - sr) <= 320  # ...or cut as silence.


def test_trim_silence_of_digital_silence_is_empty():
  trimmed, span = audio.trim_silence(np.zeros(1000), 16000)
  assert trimmed.size == 0 and span == (0, 0)


def test_int16_conversion_rounds_and_clips():
  x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0, 1 / 65536 + 1e-9])
  np.testing.assert_array_equal(audio.to_int16(x),
                                [0, 16384, -16384, 32767, -32768, 32767, -32768, 1])
  ints = np.arange(-32768, 32768, 7, dtype=np.int16)
  back = audio.from_int16(ints)
  assert back.dtype == np.float32
  np.testing.assert_allclose(back, ints.astype(np.float64) / 32768.0, rtol=0, atol=0)
  np.testing.assert_array_equal(audio.to_int16(back), ints)

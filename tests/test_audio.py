"""ge2e_jax.audio against float64 NumPy references and hand-made bad files."""

import os
import struct

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


# --- hardening: rates, codecs, containers, special files, content checks ----------------

def _patched_wav(tmp_path, name, offset_in_fmt, fmt, value):
  data = bytearray(_wav_bytes(tmp_path))
  struct.pack_into(fmt, data, data.find(b"fmt ") + offset_in_fmt, value)
  (tmp_path / name).write_bytes(bytes(data))
  return tmp_path / name


@pytest.mark.parametrize("rate", [999_999_999, 1, 999, 768_001])
def test_header_sample_rate_out_of_range_is_refused_before_decoding(tmp_path, rate):
  path = _patched_wav(tmp_path, "rate.wav", 12, "<I", rate)
  with pytest.raises(audio.AudioReadError, match=f"sample rate of {rate} Hz"):
    audio.read_audio(path)


@pytest.mark.parametrize("rate", [True, 1, 999, 768_001, float("inf"), float("nan"), 16000.5,
                                  "16000", None])
def test_bad_sample_rates_are_refused_by_every_entry_point(rate):
  wav = np.zeros(1000, np.float32)
  for call in (lambda: audio.resample(wav, rate, 16000), lambda: audio.to_16k_mono(wav, rate),
               lambda: audio.speech_16k(wav, rate, audio.TrimOptions()),
               lambda: audio.trim_silence(wav, rate)):
    with pytest.raises(ValueError, match="sample rate must be a positive whole number"):
      call()
  assert audio.check_sample_rate(44100.0) == 44100
  assert audio.check_sample_rate(np.int64(8000)) == 8000


@pytest.mark.parametrize("subtype,sample_rate", [("GSM610", 8000), ("G721_32", 8000)])
def test_codecs_soundfile_calls_unseekable_are_decoded(tmp_path, subtype, sample_rate):
  ref = 0.5 * np.sin(np.arange(8000) * 0.05) * np.hanning(8000)
  sf.write(tmp_path / "x.wav", ref, sample_rate, subtype=subtype)
  wav, sr = audio.read_audio(tmp_path / "x.wav")
  assert sr == sample_rate and len(wav) >= len(ref)
  assert np.corrcoef(wav[:len(ref)], ref)[0, 1] > 0.99  # lossy codecs, the same tone


def test_truncated_ogg_is_refused_like_a_truncated_wav(tmp_path):
  noise = 0.3 * np.random.default_rng(0).standard_normal(48000)
  sf.write(tmp_path / "x.ogg", noise, 16000, format="OGG", subtype="VORBIS")
  data = (tmp_path / "x.ogg").read_bytes()
  assert len(audio.read_audio(tmp_path / "x.ogg")[0]) == 48000
  for cut in (len(data) // 2, len(data) - 1):
    (tmp_path / "cut.ogg").write_bytes(data[:cut])
    with pytest.raises(audio.AudioReadError, match="truncated: Ogg"):
      audio.read_audio(tmp_path / "cut.ogg")


def test_header_declaring_billions_of_frames_allocates_nothing_up_front(tmp_path):
  sf.write(tmp_path / "x.flac", _tone(440, 0.5, 16000), 16000)
  data = bytearray((tmp_path / "x.flac").read_bytes())
  data[21] |= 0x0F  # STREAMINFO total samples (36 bits) = 2**36 - 1
  data[22:26] = b"\xff\xff\xff\xff"
  (tmp_path / "huge.flac").write_bytes(bytes(data))
  with pytest.raises(audio.AudioReadError, match="huge.flac: not a readable audio file"):
    audio.read_audio(tmp_path / "huge.flac")


def test_fifos_devices_folders_and_dangling_links_are_not_read(tmp_path):
  os.mkfifo(tmp_path / "pipe.wav")  # opening it for reading would block without a writer
  (tmp_path / "folder.wav").mkdir()
  os.symlink(tmp_path / "absent.wav", tmp_path / "dangling.wav")
  for path, reason in ((tmp_path / "pipe.wav", "not a regular file (a FIFO)"),
                       ("/dev/zero", "not a regular file (a character device)"),
                       (tmp_path / "folder.wav", "not a regular file (a directory)"),
                       (tmp_path / "dangling.wav", "dangling symbolic link")):
    with pytest.raises(audio.AudioReadError) as info:
      audio.read_audio(path)
    assert info.value.reason == reason and info.value.path == os.fspath(path)


def test_channel_mix_down_is_finite_and_zero_channels_are_refused():
  big = np.finfo(np.float32).max
  np.testing.assert_array_equal(audio.to_mono(np.full((3, 2), big, np.float32)), [big] * 3)
  with pytest.raises(ValueError, match="at least one channel"):
    audio.to_mono(np.zeros((100, 0), np.float32))
  with pytest.raises(ValueError, match="at least one channel"):
    audio.speech_16k(np.zeros((100, 0), np.float32), 16000, audio.TrimOptions())
  for wav in (np.full((8000, 2), big, np.float32), 1e19 * _tone(440, 0.5, 16000)):
    with pytest.raises(ValueError, match="samples reach"):
      audio.speech_16k(wav, 16000, audio.TrimOptions())


@pytest.mark.parametrize("field,value", [("top_db", -10.0), ("top_db", float("nan")),
                                         ("top_db", float("inf")), ("top_db", 0.0),
                                         ("frame_ms", 0.0), ("pad_ms", -1.0)])
def test_trim_settings_the_vad_cannot_use_are_refused(field, value):
  with pytest.raises(ValueError, match=f"{field} must be a finite number"):
    audio.TrimOptions(**{field: value})
  with pytest.raises(ValueError, match=f"{field} must be a finite number"):
    audio.trim_silence(_tone(440, 0.5, 16000), 16000, **{field: value})


def _loudest_frame_db(wav):
  """float64 reference: the loudest whole 320-sample frame's RMS with its mean removed."""
  frames = np.asarray(wav, np.float64)[:len(wav) // 320 * 320].reshape(-1, 320)
  with np.errstate(divide="ignore"):
    return 20 * np.log10(frames.std(axis=1).max())


def test_minimum_speech_check_refuses_noise_floor_cancelled_channels_and_dc():
  rng = np.random.default_rng(0)
  speech = _padded_tone(16000, 0.2, 0.5, 0.2, noise_db=-60.0)
  lsb = rng.integers(-1, 2, len(speech)) / 32768
  untrimmed = audio.TrimOptions(enabled=False)
  for wav in (lsb, np.stack([speech, lsb - speech], 1), np.full(16000, 0.5),
              speech * 10 ** (-65 / 20) / 10 ** (_loudest_frame_db(speech) / 20)):
    level = _loudest_frame_db(audio.to_mono(wav))
    assert level < audio.MIN_SPEECH_DBFS
    with pytest.raises(ValueError, match=f"silent: loudest 20 ms frame is at {level:.0f} dB"):
      audio.speech_16k(wav, 16000, untrimmed)
  quiet = speech * 10 ** (-55 / 20) / 10 ** (_loudest_frame_db(speech) / 20)
  assert audio.speech_16k(quiet, 16000, untrimmed)[0].shape == (len(speech),)


def test_minimum_length_is_one_frame_after_trimming():
  tone = 0.5 * np.sin(np.arange(audio.MIN_SPEECH_SAMPLES) / 3.0)
  assert audio.MIN_SPEECH_SAMPLES == 400
  assert len(audio.speech_16k(tone, 16000, audio.TrimOptions())[0]) == 400
  with pytest.raises(ValueError, match="too short: 399 samples at 16000 Hz after silence"):
    audio.speech_16k(tone[:399], 16000, audio.TrimOptions())

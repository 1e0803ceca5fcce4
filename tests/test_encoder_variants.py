"""Encoder variants as config (imported encoders): float64 NumPy references written here.

Slaney mel filters and mel power (librosa's definitions), volume normalisation, a plain
LSTM + dense/ReLU head (torch.nn.LSTM's equations), and Resemblyzer's partial windows
(a port of ``VoiceEncoder.compute_partial_slices`` and its zero-padded, centred mel).
The same against librosa and Resemblyzer themselves: tests/test_pretrained_parity.py.
"""

import dataclasses
import math

import jax
import numpy as np
import pytest

from ge2e_jax import features, inference, model

SMALL = dataclasses.replace(model.RESEMBLYZER, cells=8, head=6, layers=2)


def slaney_mel(hz):
  hz = np.asarray(hz, np.float64)
  return np.where(hz < 1000, 3 * hz / 200, 15 + 27 * np.log(np.maximum(hz, 1e-9) / 1000) / np.log(6.4))


def slaney_hz(mel):
  return np.where(mel < 15, 200 * mel / 3, 1000 * 6.4 ** ((mel - 15) / 27))


def reference_slaney_filters(n_mels=40, n_fft=400, sr=16000):
  """librosa.filters.mel(sr, n_fft, n_mels) (htk=False, norm='slaney'), bin by bin."""
  edges = slaney_hz(np.linspace(slaney_mel(0.0), slaney_mel(sr / 2), n_mels + 2))
  weights = np.zeros((n_fft // 2 + 1, n_mels))
  for b in range(n_fft // 2 + 1):
    f = b * sr / n_fft
    for m in range(n_mels):
      lo, c, hi = edges[m:m + 3]
      weights[b, m] = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c))) * 2 / (hi - lo)
  return weights


def reference_mel_power(audio, n_fft=400):
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
  frames = 1 + (len(audio) - 400) // 160
  spectra = np.stack([np.abs(np.fft.rfft(audio[f * 160:f * 160 + 400] * window, n_fft)) ** 2
                      for f in range(frames)])
  return spectra @ reference_slaney_filters(n_fft=n_fft)


def test_slaney_filters_match_reference():
  np.testing.assert_allclose(features.mel_filterbank(40, 400, scale="slaney"),
                             reference_slaney_filters(), rtol=1e-12, atol=1e-15)


def test_mel_power_matches_reference():
  audio = np.random.default_rng(1).uniform(-0.5, 0.5, 2000)
  got = np.asarray(features.mel_spectrogram(audio.astype(np.float32), n_fft=400,
                                            mel_scale="slaney", log=False))
  want = reference_mel_power(audio)
  assert got.shape == want.shape == (features.num_frames(2000), 40)
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6 * want.max())


@pytest.mark.parametrize("xp", [np, jax.numpy])
def test_volume_is_raised_to_the_target_only(xp):
  rng = np.random.default_rng(2)
  quiet, loud = 0.001 * rng.standard_normal(3000), 0.5 * rng.standard_normal(3000)
  batch = np.stack([quiet, loud]).astype(np.float32)
  got = np.asarray(features.normalize_volume(xp.asarray(batch), -30.0, xp), np.float64)
  dbfs = lambda x: 20 * np.log10(np.sqrt(np.mean(np.square(x))))
  assert abs(dbfs(got[0]) - -30.0) < 1e-4
  np.testing.assert_allclose(got[0], quiet * 10 ** ((-30 - dbfs(quiet)) / 20), rtol=1e-5)
  np.testing.assert_array_equal(got[1], batch[1])  # already louder: untouched
  assert features.normalize_volume(batch, None) is batch


def reference_encoder(params, mel):
  """torch.nn.LSTM (i, f, g, o; no projection) layers -> last frame -> ReLU(dense) -> L2."""
  sig = lambda z: 1 / (1 + np.exp(-z))
  x = np.asarray(mel, np.float64)
  for i in range(SMALL.layers):
    p = {k: np.asarray(v, np.float64) for k, v in params[f"lstm_{i}"].items()}
    h = np.zeros(SMALL.cells)
    c = np.zeros(SMALL.cells)
    out = []
    for frame in x:
      z = frame @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"]
      gi, gf, gg, go = np.split(z, 4)
      c = sig(gf) * c + sig(gi) * np.tanh(gg)
      h = sig(go) * np.tanh(c)
      out.append(h)
    x = np.stack(out)
  head = np.maximum(0, x[-1] @ np.asarray(params["head"]["kernel"], np.float64)
                    + np.asarray(params["head"]["bias"], np.float64))
  return head / np.linalg.norm(head)


@pytest.fixture(scope="module")
def small_params():
  params = model.init_encoder_params(jax.random.key(3), SMALL)
  # Shift the head bias up so ReLU leaves most units on (a random init may zero them all).
  return jax.tree.map(np.asarray, params) | {
      "head": {"kernel": np.asarray(params["head"]["kernel"]),
               "bias": np.asarray(params["head"]["bias"]) + 0.5}}


def test_lstm_head_encoder_matches_reference(small_params):
  assert set(small_params) == {"lstm_0", "lstm_1", "head"}
  assert "projection_kernel" not in small_params["lstm_0"]
  mel = np.abs(np.random.default_rng(4).standard_normal((3, 12, 40))).astype(np.float32)
  got = np.asarray(model.SpeakerEncoder(SMALL).apply(
      {"params": small_params}, mel, method=model.SpeakerEncoder.embed_features))
  assert got.shape == (3, model.embedding_dim(SMALL))
  for row, features_ in zip(got, mel):
    np.testing.assert_allclose(row, reference_encoder(small_params, features_), atol=2e-6)


def test_default_config_keeps_the_papers_params_and_old_configs_load():
  old = {"cells": 16, "projection": 8, "layers": 3, "n_mels": 40, "forget_bias": 1.0,
         "scan_unroll": 1}  # a config.json written before the variants existed
  config = model.config_from_dict(old)
  assert config == model.EncoderConfig(cells=16, projection=8)
  params = jax.eval_shape(lambda: model.init_encoder_params(jax.random.key(0), config))
  assert sorted(params) == ["lstmp_0", "lstmp_1", "lstmp_2"]
  assert sorted(params["lstmp_0"]) == ["bias", "input_kernel", "projection_kernel",
                                       "recurrent_kernel"]
  assert model.embedding_dim(config) == 8
  with pytest.raises(ValueError, match="window_rule"):
    model.EncoderConfig(cells=4, projection=2, window_rule="nope")


def reference_partial_slices(n_samples, rate=1.3, min_coverage=0.75, partial=160):
  """resemblyzer 0.1.4 VoiceEncoder.compute_partial_slices (mel slices), line by line."""
  samples_per_frame = 160
  n_frames = int(np.ceil((n_samples + 1) / samples_per_frame))
  frame_step = int(np.round((16000 / rate) / samples_per_frame))
  starts = list(range(0, max(1, n_frames - partial + frame_step + 1), frame_step))
  coverage = (n_samples - starts[-1] * samples_per_frame) / (partial * samples_per_frame)
  if coverage < min_coverage and len(starts) > 1:
    starts = starts[:-1]
  return starts


@pytest.mark.parametrize("rate,coverage", [(1.3, 0.75), (1.25, 0.75), (2.0, 0.5)])
def test_partial_window_count_and_starts_match_resemblyzer(rate, coverage):
  config = dataclasses.replace(SMALL, partial_rate=rate, min_coverage=coverage)
  lengths = list(range(400, 80000, 97)) + [25599, 25600, 25601, 19200 + 12320, 44800]
  for n in lengths:
    starts = reference_partial_slices(n, rate, coverage)
    assert inference.num_windows(n, config=config) == len(starts), n
    np.testing.assert_array_equal(inference.window_start_frames(n, config=config), starts)


def test_partial_windows_are_slices_of_the_centred_zero_padded_mel():
  """Resemblyzer: mel of the wav zero-padded to the last partial, centred frames (librosa's
  center=True, constant padding), sliced; ours: each window's samples, then the frontend."""
  rng = np.random.default_rng(5)
  wav = (0.1 * rng.standard_normal(45000)).astype(np.float32)
  starts = reference_partial_slices(len(wav))
  padded = np.pad(wav, (0, max(0, (starts[-1] + 160) * 160 - len(wav))))
  centred = np.pad(padded, 200)  # librosa center=True, pad_mode="constant"
  idx = inference.window_indices(len(wav), config=SMALL)
  windows = inference.gather_windows(wav, idx)
  assert windows.shape == (len(starts), features.samples_for_frames(160))
  for start, window in zip(starts, windows):
    np.testing.assert_array_equal(window, centred[start * 160:start * 160 + window.shape[0]])


def test_embed_waveforms_follows_the_partials_rule(small_params):
  """The traced (exported) function and the host Embedder give the same d-vectors."""
  rng = np.random.default_rng(6)
  embedder = inference.Embedder(SMALL, small_params, trim=inference.TrimOptions(enabled=False))
  for n in (9000, 40000):
    wav = (0.01 * rng.standard_normal(n)).astype(np.float32)  # quiet: volume gets raised
    traced = np.asarray(jax.jit(lambda w: inference.embed_waveforms(SMALL, small_params, w))(
        wav[None]))[0]
    np.testing.assert_allclose(traced, embedder.embed_prepared([wav])[0], atol=2e-6)
    windows = inference.gather_windows(
        features.normalize_volume(wav, -30.0, np), inference.window_indices(n, config=SMALL))
    per_window = np.asarray(model.SpeakerEncoder(SMALL).apply({"params": small_params}, windows))
    mean = per_window.astype(np.float64).mean(0)
    np.testing.assert_allclose(traced, mean / np.linalg.norm(mean), atol=2e-6)
    assert math.isclose(np.linalg.norm(traced), 1, abs_tol=1e-6)


def test_prepare_sets_the_level_of_the_whole_recording_before_trimming(small_params):
  """Resemblyzer's preprocess_wav: normalize_volume on the recording, then trim."""
  rng = np.random.default_rng(7)
  burst = 0.004 * rng.standard_normal(16000) * np.hanning(16000)
  wav = np.concatenate([np.zeros(16000), burst, np.zeros(24000)]).astype(np.float32)
  embedder = inference.Embedder(SMALL, small_params)
  got = embedder.prepare(wav, 16000)
  _, (start, end) = embedder.trim.apply(wav)
  gain = 10 ** ((-30 - 20 * np.log10(np.sqrt(np.mean(np.float64(wav) ** 2)))) / 20)
  np.testing.assert_allclose(got, gain * wav[start:end].astype(np.float64), rtol=1e-5, atol=1e-7)
  assert gain > 10  # quiet: raised, and by the whole recording's level, not the burst's


def test_webrtcvad_trim_is_optional_and_named():
  from ge2e_jax import audio  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="trim method"):
    audio.TrimOptions(method="nope")
  try:
    import webrtcvad  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    with pytest.raises(ValueError, match="needs the webrtcvad package"):
      audio.TrimOptions(method="webrtcvad").apply(np.zeros(16000, np.float32))
  else:  # the parity extra: the trim itself is checked against Resemblyzer's there
    pytest.skip("webrtcvad is installed; tests/test_pretrained_parity.py checks the trim")

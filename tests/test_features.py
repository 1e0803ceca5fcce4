"""ge2e_jax.features against a float64 NumPy reference written here from the definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ge2e_jax import features

# float32 FFT and matmul round at ~1e-7 relative to the energy they sum, so log-energies
# of these signals (every band well above eps) agree to ~1e-6 (measured: 7.5e-7). 2e-5
# leaves margin; a wrong window, bin or filter edge moves values by >= 1e-2.
LOG_MEL_ATOL = 2e-5


def hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_to_hz(mel):
  return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def reference_filterbank(n_mels=40, n_fft=512, sample_rate=16000):
  """HTK triangles, evaluated bin by bin in the mel domain."""
  top = hz_to_mel(sample_rate / 2)
  edges = [top * i / (n_mels + 1) for i in range(n_mels + 2)]
  weights = np.zeros((n_fft // 2 + 1, n_mels))
  for b in range(n_fft // 2 + 1):
    mel = hz_to_mel(b * sample_rate / n_fft)
    for m in range(n_mels):
      left, centre, right = edges[m], edges[m + 1], edges[m + 2]
      if left < mel <= centre:
        weights[b, m] = (mel - left) / (centre - left)
      elif centre < mel < right:
        weights[b, m] = (right - mel) / (right - centre)
  return weights


def reference_log_mel(audio, n_mels=40, eps=1e-6):
  audio = np.asarray(audio, np.float64)
  n = np.arange(400)
  window = 0.5 * (1.0 - np.cos(2.0 * np.pi * n / 400))  # periodic Hann
  frames = 1 + (audio.shape[-1] - 400) // 160
  filterbank = reference_filterbank(n_mels)
  out = np.empty(audio.shape[:-1] + (frames, n_mels))
  for lead in np.ndindex(audio.shape[:-1]):
    for f in range(frames):
      segment = audio[lead][f * 160:f * 160 + 400] * window
      power = np.abs(np.fft.rfft(segment, n=512)) ** 2
      out[lead + (f,)] = np.log(power @ filterbank + eps)
  return out


@pytest.mark.parametrize("shape", [(1000,), (3, 1200), (2, 3, 560)])
def test_log_mel_matches_reference(shape):
  audio = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
  got = features.log_mel(audio)
  assert got.dtype == jnp.float32
  assert got.shape == shape[:-1] + (features.num_frames(shape[-1]), 40)
  np.testing.assert_allclose(got, reference_log_mel(audio), atol=LOG_MEL_ATOL, rtol=0)


def test_quiet_audio_matches_reference():
  audio = 1e-3 * np.random.default_rng(1).standard_normal((2, 2000)).astype(np.float32)
  np.testing.assert_allclose(features.log_mel(audio), reference_log_mel(audio),
                             atol=LOG_MEL_ATOL, rtol=0)


@pytest.mark.parametrize("band", [3, 15, 30])
def test_pure_tone_peaks_in_its_band(band):
  top = hz_to_mel(8000.0)
  hz = mel_to_hz(top * (band + 1) / 41)  # centre of `band`
  t = np.arange(features.samples_for_frames(12)) / 16000
  tone = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
  out = np.asarray(features.log_mel(tone))
  assert out.shape == (12, 40)
  np.testing.assert_array_equal(out.argmax(axis=-1), band)
  far_bands = np.r_[0:band - 2, band + 3:40]
  assert np.all(out[:, band] > out[:, far_bands].max(axis=-1) + 4.0)  # > e^4 x energy


def test_frame_arithmetic():
  assert features.samples_for_frames(80) == 13040
  assert features.samples_for_frames(1) == 400
  for frames in range(1, 300):
    samples = features.samples_for_frames(frames)
    assert features.num_frames(samples) == frames
    assert features.num_frames(samples + 159) == frames
    assert features.num_frames(samples + 160) == frames + 1
  assert features.log_mel(np.zeros(13040 + 100, np.float32)).shape == (80, 40)
  with pytest.raises(ValueError, match="399 samples"):
    features.num_frames(399)
  with pytest.raises(ValueError, match="frames"):
    features.samples_for_frames(0)


def test_jit_and_vmap_agree_with_eager():
  audio = np.random.default_rng(2).uniform(-1, 1, (3, 900)).astype(np.float32)
  eager = np.asarray(features.log_mel(audio))
  np.testing.assert_allclose(jax.jit(features.log_mel)(audio), eager, atol=1e-5, rtol=0)
  np.testing.assert_allclose(jax.vmap(features.log_mel)(audio), eager, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_input_computes_in_float32(dtype):
  audio = np.random.default_rng(3).uniform(-1, 1, (2, 900)).astype(np.float32)
  half = jnp.asarray(audio, dtype)
  got = features.log_mel(half)
  assert got.dtype == jnp.float32
  assert np.all(np.isfinite(got))
  # Upcasting is exact, so a half input equals its float32 copy ...
  np.testing.assert_allclose(got, features.log_mel(half.astype(jnp.float32)), atol=1e-5)
  # ... and differs from the unrounded audio only by the input quantisation (bf16: 2^-9
  # relative per sample; measured 8e-3 in log-energy).
  np.testing.assert_allclose(got, features.log_mel(audio), atol=0.03)


def test_gradient_is_finite_even_for_silence():
  audio = jnp.zeros((2, 800)).at[1].set(jnp.linspace(-0.5, 0.5, 800))
  grad = jax.grad(lambda a: features.log_mel(a).sum())(audio)
  assert np.all(np.isfinite(grad))
  assert np.any(grad[1] != 0)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="at least one 400-sample window"):
    features.log_mel(np.zeros((2, 399), np.float32))
  with pytest.raises(ValueError, match="floating point"):
    features.log_mel(np.zeros(1000, np.int16))
  with pytest.raises(ValueError, match="scalar"):
    features.log_mel(np.float32(0.0))


def test_filterbank_matches_reference_and_is_cached():
  fb = features.mel_filterbank()
  assert fb.shape == (257, 40)
  np.testing.assert_allclose(fb, reference_filterbank(), atol=1e-12, rtol=0)
  assert features.mel_filterbank() is fb
  assert not fb.flags.writeable


def test_filterbank_is_triangles_covering_the_range():
  fb = features.mel_filterbank()
  assert np.all(fb >= 0) and np.all(fb <= 1)
  for column in fb.T:
    support = np.flatnonzero(column)
    assert support.size >= 2
    assert np.all(column[support[0]:support[-1] + 1] > 0)  # one contiguous lobe
    peak = column.argmax()
    assert np.all(np.diff(column[support[0]:peak + 1]) > 0)
    assert np.all(np.diff(column[peak:support[-1] + 1]) < 0)
  # Neighbouring triangles sum to 1 between the first and last centre: no gaps.
  bin_mel = hz_to_mel(np.arange(257) * 16000 / 512)
  step = hz_to_mel(8000.0) / 41
  inside = (bin_mel >= step) & (bin_mel <= 40 * step)
  np.testing.assert_allclose(fb[inside].sum(axis=1), 1.0, atol=1e-12)
  assert fb[0].sum() == 0 and fb[-1].sum() == 0  # DC and Nyquist are edges
  # Unnormalised: as bins get finer, every triangle's sampled peak approaches 1.
  fine = features.mel_filterbank(n_fft=2 ** 16)
  assert np.all(fine.max(axis=0) > 0.99)


def test_filterbank_bad_arguments_raise():
  with pytest.raises(ValueError, match="fmax"):
    features.mel_filterbank(fmax=9000.0)
  with pytest.raises(ValueError, match="fmin"):
    features.mel_filterbank(fmin=4000.0, fmax=3000.0)
  with pytest.raises(ValueError, match="n_mels"):
    features.mel_filterbank(n_mels=0)

"""The signal operations of the augmentation kinds: JAX on device (jit-able, length-keeping)
and a few host NumPy generators (coloured noise)."""

import math

import jax.numpy as jnp
import numpy as np

from ge2e_jax.features import SAMPLE_RATE

COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectrum ~ 1 / f^exponent
NOISE_FLOOR_HZ = 20.0  # pink/brown spectra are flat below this (no sub-audible rumble)


def fft_size(n: int) -> int:
  """The power of two >= n (FFT length of a linear convolution of n samples)."""
  return 1 << max(int(n) - 1, 1).bit_length()


def gain(audio, db):
  """audio * 10^(db / 20); ``db`` broadcasts over the leading axes."""
  return audio * (10.0 ** (jnp.asarray(db, audio.dtype) / 20.0))[..., None]


def mix_at_snr(signal, noise, snr_db, valid=None):
  """signal + g * noise with g set so 10 log10(sum signal^2 / sum (g noise)^2) = snr_db.

  Sums run over the last axis, within ``valid`` (a 0/1 mask) when given; the added noise is
  zero outside it. A silent signal gets no noise.
  """
  if valid is not None:
    noise = noise * valid
  signal_power = jnp.sum(jnp.square(signal if valid is None else signal * valid), -1)
  noise_power = jnp.sum(jnp.square(noise), -1)
  target = signal_power / (10.0 ** (jnp.asarray(snr_db, signal.dtype) / 10.0))
  scale = jnp.sqrt(target / jnp.maximum(noise_power, jnp.finfo(signal.dtype).tiny))
  return signal + scale[..., None] * noise


def colored_noise(rng: np.random.Generator, samples: int, exponent: float,
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Gaussian noise with power spectrum ~ 1 / f^exponent (flat below 20 Hz), unit variance.

  0 white, 1 pink, 2 brown: white noise shaped in the frequency domain (host NumPy).
  """
  spectrum = np.fft.rfft(rng.standard_normal(samples))
  freqs = np.maximum(np.fft.rfftfreq(samples, 1.0 / sample_rate), NOISE_FLOOR_HZ)
  noise = np.fft.irfft(spectrum * (freqs / NOISE_FLOOR_HZ) ** (-exponent / 2), n=samples)
  return noise / np.std(noise)


def fft_convolve(audio, kernel, delay: int = 0):
  """Linear convolution audio * kernel via FFT, samples [delay, delay + len(audio)).

  ``kernel`` (..., taps) broadcasts against audio (..., samples); delay 0 keeps a causal
  filter's output aligned with its input, (taps - 1) // 2 a linear-phase filter's.
  """
  samples, taps = audio.shape[-1], kernel.shape[-1]
  n_fft = fft_size(samples + taps - 1)
  spectrum = jnp.fft.rfft(audio, n=n_fft) * jnp.fft.rfft(kernel, n=n_fft)
  return jnp.fft.irfft(spectrum, n=n_fft)[..., delay:delay + samples].astype(audio.dtype)


def band_pass_kernel(low_hz, high_hz, taps: int, sample_rate: int = SAMPLE_RATE):
  """Linear-phase windowed-sinc (Blackman) band-pass FIR, (..., taps) for edges (...)."""
  k = jnp.arange(taps, dtype=jnp.float32) - (taps - 1) / 2
  low = jnp.asarray(low_hz, jnp.float32)[..., None] / sample_rate
  high = jnp.asarray(high_hz, jnp.float32)[..., None] / sample_rate
  ideal = 2 * high * jnp.sinc(2 * high * k) - 2 * low * jnp.sinc(2 * low * k)
  return ideal * jnp.asarray(np.blackman(taps), jnp.float32)


def band_pass(audio, low_hz, high_hz, taps: int = 255):
  """Zero-phase (delay-compensated) FIR band-pass, same length as ``audio``."""
  return fft_convolve(audio, band_pass_kernel(low_hz, high_hz, taps), delay=(taps - 1) // 2)


def mu_law(audio, mu: float = 255.0, bits: int = 8):
  """A G.711-style mu-law codec: compress, quantise to 2^bits levels, expand (clips to +-1)."""
  x = jnp.clip(audio, -1.0, 1.0)
  compressed = jnp.sign(x) * jnp.log1p(mu * jnp.abs(x)) / math.log1p(mu)
  levels = 2 ** bits - 1
  quantised = jnp.round((compressed + 1) * (levels / 2)) * (2 / levels) - 1
  return jnp.sign(quantised) * jnp.expm1(jnp.abs(quantised) * math.log1p(mu)) / mu


def speed(audio, factor, interpolation: str = "linear", half_taps: int = 8, length=None):
  """Speed perturbation: y[t] = x(factor * t), positions wrapped modulo the valid length.

  ``factor`` broadcasts over the leading axes (> 1 faster). Output length == input length:
  slower speech is cropped, faster speech tiles (restarts from its beginning). Positions
  are float32: at sample t they are exact to ~t * 6e-8 samples. ``length``
  (leading axes) is the number of valid samples (default all); samples beyond it are zero.
  "sinc" is a Hann-windowed sinc with ``half_taps`` taps a side whose cutoff is lowered to
  1 / factor when faster (anti-aliasing); "linear" interpolates between neighbours.
  """
  samples = audio.shape[-1]
  factor = jnp.asarray(factor, jnp.float32)[..., None]
  length = jnp.full(audio.shape[:-1], samples) if length is None else jnp.asarray(length)
  length = length[..., None]
  t = jnp.arange(samples, dtype=jnp.float32)
  position = jnp.mod(t * factor, length.astype(jnp.float32))
  base = jnp.floor(position)
  frac = position - base
  base = base.astype(jnp.int32)

  def tap(offset):
    index = jnp.mod(base + offset, length)
    return jnp.take_along_axis(audio, jnp.broadcast_to(index, audio.shape), axis=-1)

  if interpolation == "linear":
    out = (1 - frac) * tap(0) + frac * tap(1)
  elif interpolation == "sinc":
    # kernel(d) = sin(pi c d) / (pi d) * (0.5 + 0.5 cos(pi d / W)) at d = frac - offset; the
    # sines and cosines of (frac - offset) come from frac's by the angle-difference
    # identities, so each tap costs a gather and a few multiplies, not two transcendentals.
    cutoff = jnp.minimum(1.0, 1.0 / factor)
    sin_c, cos_c = jnp.sin(jnp.pi * cutoff * frac), jnp.cos(jnp.pi * cutoff * frac)
    sin_w, cos_w = jnp.sin(jnp.pi * frac / half_taps), jnp.cos(jnp.pi * frac / half_taps)
    out = jnp.zeros_like(audio)
    for offset in range(-half_taps + 1, half_taps + 1):
      distance = frac - offset
      angle = jnp.pi * cutoff * offset
      sine = sin_c * jnp.cos(angle) - cos_c * jnp.sin(angle)
      at_zero = distance == 0
      kernel = jnp.where(at_zero, cutoff, sine / (jnp.pi * jnp.where(at_zero, 1.0, distance)))
      w = math.pi * offset / half_taps
      window = 0.5 + 0.5 * (cos_w * math.cos(w) + sin_w * math.sin(w))
      out = out + tap(offset) * (kernel * window)
  else:
    raise ValueError(f"interpolation must be 'sinc' or 'linear', got {interpolation!r}")
  return jnp.where(t < length, out, 0.0).astype(audio.dtype)

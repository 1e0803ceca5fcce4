"""Mel filterbank features in JAX: the paper's 40-dim log-mel frontend (Wan et al. 2018, §3).

The same pure-jnp function runs inside the jitted (and shard_mapped) train step, in
inference and in the jax2tf / jax.export serving graph, so features never drift between
training and serving.

What it computes, per frame of 16 kHz float32 audio in [-1, 1):
  window 400 samples (25 ms), hop 160 samples (10 ms), no centre padding;
  periodic Hann window, zero-padded to a 512-point FFT -> power |X|^2 (257 bins);
  HTK-mel triangular filterbank (40 filters, 0 Hz .. 8 kHz) -> log(mel + eps).

Options for imported encoders (``model.EncoderConfig`` holds them): ``n_fft`` (400 for
Resemblyzer: no zero padding), ``mel_scale="slaney"`` (librosa's default filters: Slaney's
mel scale, triangles in Hz, area-normalised) and ``log=False`` (mel power, as Resemblyzer
feeds its LSTM); ``normalize_volume`` brings an utterance to a target dBFS.

Frame arithmetic: ``F`` frames cover ``400 + (F - 1) * 160`` samples
(``samples_for_frames``); ``S >= 400`` samples give ``1 + (S - 400) // 160`` frames
(``num_frames``), trailing samples that do not fill a frame are ignored. 80 frames -> 13040
samples.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
WIN_LENGTH = 400
HOP_LENGTH = 160
N_FFT = 512
N_MELS = 40
MEL_SCALES = ("htk", "slaney")


def samples_for_frames(frames: int) -> int:
  """Number of samples that yield exactly `frames` frames (no centre padding)."""
  if frames < 1:
    raise ValueError(f"frames must be >= 1, got {frames}")
  return WIN_LENGTH + (frames - 1) * HOP_LENGTH


def num_frames(samples: int) -> int:
  """Number of whole frames in `samples` samples; a partial trailing hop is dropped."""
  if samples < WIN_LENGTH:
    raise ValueError(
        f"audio has {samples} samples; at least one {WIN_LENGTH}-sample window "
        f"({1000 * WIN_LENGTH // SAMPLE_RATE} ms at {SAMPLE_RATE} Hz) is needed")
  return 1 + (samples - WIN_LENGTH) // HOP_LENGTH


def _hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _slaney_hz_to_mel(hz):
  """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
  hz = np.asarray(hz, np.float64)
  log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
  return np.where(hz >= 1000.0, log_part, hz / (200.0 / 3))


def _slaney_mel_to_hz(mel):
  mel = np.asarray(mel, np.float64)
  return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)),
                  mel * (200.0 / 3))


@functools.lru_cache(maxsize=None)
def _cached_filterbank(n_mels, n_fft, sample_rate, fmin, fmax, scale):
  bin_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
  if scale == "htk":  # triangles in the mel domain, peak 1
    mel_edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    bins, (left, centre, right) = _hz_to_mel(bin_hz)[:, None], (
        mel_edges[:-2], mel_edges[1:-1], mel_edges[2:])
  else:  # librosa.filters.mel(htk=False, norm="slaney"): triangles in Hz, unit area
    hz_edges = _slaney_mel_to_hz(np.linspace(_slaney_hz_to_mel(fmin), _slaney_hz_to_mel(fmax),
                                             n_mels + 2))
    bins, (left, centre, right) = bin_hz[:, None], (hz_edges[:-2], hz_edges[1:-1], hz_edges[2:])
  rising = (bins - left) / (centre - left)
  falling = (right - bins) / (right - centre)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  if scale == "slaney":
    weights *= 2.0 / (right - left)
  weights.setflags(write=False)
  return weights


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT,
                   sample_rate: int = SAMPLE_RATE, fmin: float = 0.0,
                   fmax: float | None = None, scale: str = "htk") -> np.ndarray:
  """Mel filterbank, shape (n_fft // 2 + 1, n_mels), float64, read-only.

  ``scale="htk"`` (the paper's): filter edges evenly spaced on the HTK mel scale
  ``2595 * log10(1 + f / 700)``; like HTK (and Kaldi) each filter is a triangle in the mel
  domain, 0 at its neighbours' centres and 1 at its own centre (unnormalised: a bin's weight
  only reaches 1 when it sits exactly on a centre). ``scale="slaney"``: librosa's default
  (``librosa.filters.mel(htk=False, norm="slaney")``), edges on Slaney's mel scale, triangles
  linear in Hz, each scaled to unit area. Computed once per argument set in NumPy and
  cached, so in a traced graph it is a constant.
  """
  fmax = sample_rate / 2 if fmax is None else fmax
  if n_mels < 1 or n_fft < 2:
    raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got {n_mels}, {n_fft}")
  if not 0.0 <= fmin < fmax <= sample_rate / 2:
    raise ValueError(
        f"need 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2}, "
        f"got fmin={fmin}, fmax={fmax}")
  if scale not in MEL_SCALES:
    raise ValueError(f"mel scale must be one of {MEL_SCALES}, got {scale!r}")
  return _cached_filterbank(int(n_mels), int(n_fft), int(sample_rate), float(fmin),
                            float(fmax), scale)


@functools.lru_cache(maxsize=None)
def _frame_indices(frames):
  return (np.arange(frames)[:, None] * HOP_LENGTH
          + np.arange(WIN_LENGTH)[None, :]).astype(np.int32)


def _periodic_hann():
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)).astype(
      np.float32)


def log_mel(audio, *, n_mels: int = N_MELS, eps: float = 1e-6) -> jax.Array:
  """The paper's log-mel energies of float audio (..., samples) -> (..., frames, n_mels)."""
  return mel_spectrogram(audio, n_mels=n_mels, eps=eps)


def mel_spectrogram(audio, *, n_mels: int = N_MELS, n_fft: int = N_FFT, mel_scale: str = "htk",
                    log: bool = True, eps: float = 1e-6) -> jax.Array:
  """Mel energies (``log(mel + eps)`` when ``log``) of float audio (..., samples) ->
  (..., frames, n_mels).

  Frames are cut by one static gather (indices are a constant of the static sample count)
  and transformed with ``jnp.fft.rfft``: a (400, 512) windowed real-DFT matrix as one
  matmul costs 21 GFLOP for a td batch (51200 frames x 400 x 512 x 2) and was slower on
  CPU, as was framing by strided reshape + concatenate (BENCHMARKS.md). rfft also lowers
  on GPU (cuFFT) and TPU and converts through jax2tf. The mel matmul uses HIGHEST precision
  so TF32/bf16 matmul defaults on GPU/TPU do not coarsen quiet bands. No square roots, so
  gradients are finite even for silence.

  Half-precision input is upcast: arithmetic is float32, or float64 for float64 input
  (used by the float64 gradient checks).
  """
  audio = jnp.asarray(audio)
  if not jnp.issubdtype(audio.dtype, jnp.floating):
    raise ValueError(
        f"audio must be floating point in [-1, 1) (e.g. int16 / 32768), got dtype "
        f"{audio.dtype}")
  if audio.ndim < 1:
    raise ValueError("audio must have shape (..., samples), got a scalar")
  if n_fft < WIN_LENGTH:
    raise ValueError(f"n_fft must be >= the {WIN_LENGTH}-sample window, got {n_fft}")
  frames = num_frames(audio.shape[-1])
  dtype = jnp.promote_types(audio.dtype, jnp.float32)
  audio = audio.astype(dtype)
  windows = audio[..., _frame_indices(frames)] * _periodic_hann().astype(dtype)
  spectrum = jnp.fft.rfft(windows, n=n_fft, axis=-1)
  power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
  filterbank = jnp.asarray(mel_filterbank(n_mels, n_fft, scale=mel_scale), dtype)
  mel = jnp.matmul(power, filterbank, precision=jax.lax.Precision.HIGHEST)
  return jnp.log(mel + eps) if log else mel


def normalize_volume(audio, target_dbfs: float | None, xp=jnp, samples: int | None = None):
  """Scales each utterance (..., samples) up to an RMS of ``target_dbfs`` dB full scale.

  Resemblyzer's ``normalize_volume(increase_only=True)``: louder utterances stay as they are,
  so clipping is never made worse. ``None`` returns ``audio`` unchanged. ``xp`` is ``jnp``
  (traced code) or ``np`` (the host-side Embedder). ``samples``: the RMS is taken over this
  many samples, ``audio`` holding all the energy (a recording whose silence was trimmed:
  Resemblyzer sets the level before trimming).
  """
  if target_dbfs is None:
    return audio
  power = xp.sum(xp.square(audio), axis=-1, keepdims=True) / (samples or audio.shape[-1])
  rms = xp.sqrt(power)
  change_db = target_dbfs - 20 * xp.log10(xp.maximum(rms, 1e-10))
  gain = xp.where(change_db > 0, 10 ** (change_db / 20), 1)
  return audio * gain.astype(audio.dtype)

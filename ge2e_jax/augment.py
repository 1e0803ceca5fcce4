"""Per-utterance data augmentation of raw 16 kHz audio, in JAX, inside the jitted train step.

Kinds, each applied to a random fraction ``prob`` of the utterances with parameters drawn
per utterance from its own ranges (``AugmentOptions``), in this order:
  speed    speed perturbation (tempo and pitch together, like Kaldi's ``speed``): resampling
           by a factor with linear or windowed-sinc interpolation (anti-aliased when faster);
           the output is cropped or tiled to the input length
  reverb   convolution (FFT) with a room impulse response from a bank precomputed on the host:
           exponentially decaying noise with a drawn RT60 and direct-to-reverberant ratio,
           and optionally image-method RIRs of random shoebox rooms (pyroomacoustics, the
           ``augment`` extra, only while the bank is built)
  babble   other speakers' utterances of the batch (the device's own shard), 1..k of them,
           circularly shifted, summed and added at a drawn SNR
  noise    coloured noise (white / pink / brown: white noise shaped to a 1 / f^e power
           spectrum) added at a drawn SNR
  channel  telephone channel: a linear-phase FIR band-pass (edges drawn, e.g. 300-3400 Hz),
           optionally a G.711-style mu-law 8-bit codec
  gain     a drawn gain in dB (no clipping)

Every transform keeps the length. Draws are a pure function of the key, so a training batch
stays a pure function of (seed, step) and exact resume holds. A kind with probability p is
applied to round(p * utterances) of each device's shard, a random subset, and computed for
those only (gather, transform, scatter back): its cost scales with p, and p = 0 traces
nothing.

``apply_condition`` makes fixed held-out conditions (e.g. "noise_snr5..15", "reverb_rt0.6",
"babble_snr10+telephone") of variable-length waveforms on the host, with the same code.
"""

import dataclasses
import math
import re

import jax
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
KINDS = ("speed", "reverb", "babble", "noise", "channel", "gain")
COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectrum ~ 1 / f^exponent
NOISE_FLOOR_HZ = 20.0  # pink/brown spectra are flat below this (no sub-audible rumble)


# ------------------------------------------------------------------------------ options
@dataclasses.dataclass(frozen=True)
class SpeedOptions:
  prob: float = 0.0
  factor: tuple = (0.9, 1.1)          # > 1 is faster (and higher)
  interpolation: str = "linear"       # or "sinc" (windowed, anti-aliased; 8x the gathers)
  half_taps: int = 8                  # sinc kernel half-width in input samples


@dataclasses.dataclass(frozen=True)
class ReverbOptions:
  prob: float = 0.0
  rt60_s: tuple = (0.2, 0.8)
  drr_db: tuple = (-3.0, 10.0)        # direct-to-reverberant energy ratio (synthetic RIRs)
  rir_seconds: float = 0.5            # RIR length kept in the bank
  bank_size: int = 128
  image_method: float = 0.0           # fraction of the bank from pyroomacoustics shoeboxes
  bank_seed: int = 0


@dataclasses.dataclass(frozen=True)
class BabbleOptions:
  prob: float = 0.0
  snr_db: tuple = (10.0, 20.0)
  speakers: tuple = (1, 3)            # how many other utterances are summed


@dataclasses.dataclass(frozen=True)
class NoiseOptions:
  prob: float = 0.0
  snr_db: tuple = (5.0, 20.0)
  colors: str = "white,pink,brown"    # drawn uniformly per utterance
  bank_seconds: float = 30.0          # per colour; utterances take random stretches of it
  bank_seed: int = 0


@dataclasses.dataclass(frozen=True)
class ChannelOptions:
  prob: float = 0.0
  low_hz: tuple = (200.0, 400.0)
  high_hz: tuple = (3000.0, 3800.0)
  taps: int = 255                     # odd; Blackman window: ~5.5 * 16000 / taps Hz transition
  mu_law_prob: float = 0.5            # of the utterances with a channel


@dataclasses.dataclass(frozen=True)
class GainOptions:
  prob: float = 0.0
  db: tuple = (-6.0, 6.0)


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
  speed: SpeedOptions = SpeedOptions()
  reverb: ReverbOptions = ReverbOptions()
  babble: BabbleOptions = BabbleOptions()
  noise: NoiseOptions = NoiseOptions()
  channel: ChannelOptions = ChannelOptions()
  gain: GainOptions = GainOptions()

  @classmethod
  def from_dict(cls, values) -> "AugmentOptions":
    """From ``config.augment`` (a dict or ConfigDict of kind -> fields); checks every field."""
    values = dict(values)
    unknown = set(values) - set(KINDS)
    if unknown:
      raise ValueError(f"config.augment: unknown kinds {sorted(unknown)}; expected {KINDS}")
    kinds = {}
    for field in dataclasses.fields(cls):
      option_cls = type(field.default)
      given = dict(values.get(field.name, {}))
      names = {f.name for f in dataclasses.fields(option_cls)}
      if set(given) - names:
        raise ValueError(f"config.augment.{field.name}: unknown fields "
                         f"{sorted(set(given) - names)}; expected {sorted(names)}")
      kinds[field.name] = option_cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v
                                        for k, v in given.items()})
    options = cls(**kinds)
    options.validate()
    return options

  def enabled(self) -> tuple:
    return tuple(k for k in KINDS if getattr(self, k).prob > 0)

  def validate(self):
    for kind in KINDS:
      option = getattr(self, kind)
      if not 0.0 <= option.prob <= 1.0:
        raise ValueError(f"config.augment.{kind}.prob must be in [0, 1], got {option.prob}")
      for f in dataclasses.fields(option):
        value = getattr(option, f.name)
        if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
          raise ValueError(f"config.augment.{kind}.{f.name} must be a (low, high) range with "
                           f"low <= high, got {value}")
    if self.speed.interpolation not in ("sinc", "linear"):
      raise ValueError("config.augment.speed.interpolation must be 'sinc' or 'linear', got "
                       f"{self.speed.interpolation!r}")
    if self.speed.factor[0] <= 0:
      raise ValueError(f"config.augment.speed.factor must be > 0, got {self.speed.factor}")
    bad = set(_colors(self.noise.colors)) - set(COLORS)
    if bad or not _colors(self.noise.colors):
      raise ValueError(f"config.augment.noise.colors: expected some of {sorted(COLORS)} "
                       f"(comma-separated), got {self.noise.colors!r}")
    if not (0 < self.channel.low_hz[0] and self.channel.high_hz[1] < SAMPLE_RATE / 2):
      raise ValueError("config.augment.channel: need 0 < low_hz and high_hz < 8000, got "
                       f"{self.channel.low_hz}, {self.channel.high_hz}")
    if self.channel.low_hz[1] >= self.channel.high_hz[0] or self.channel.taps % 2 == 0:
      raise ValueError("config.augment.channel: need low_hz below high_hz and odd taps, got "
                       f"{self.channel.low_hz}, {self.channel.high_hz}, {self.channel.taps}")
    if self.babble.speakers[0] < 1:
      raise ValueError(f"config.augment.babble.speakers must be >= 1, got "
                       f"{self.babble.speakers}")
    if not (0.0 <= self.reverb.image_method <= 1.0 and self.reverb.bank_size >= 1
            and self.reverb.rt60_s[0] > 0 and self.reverb.rir_seconds > 0
            and self.noise.bank_seconds > 0):
      raise ValueError(f"config.augment.reverb: need 0 <= image_method <= 1, bank_size >= 1, "
                       f"rt60_s > 0, rir_seconds > 0, and noise.bank_seconds > 0, got "
                       f"{self.reverb}, {self.noise}")


def _colors(text: str) -> tuple:
  return tuple(c.strip() for c in text.split(",") if c.strip())


# ------------------------------------------------------------------------------ primitives
def _fft_size(n: int) -> int:
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
  n_fft = _fft_size(samples + taps - 1)
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


# ------------------------------------------------------------------------------ RIR bank
def synthetic_rir(rng: np.random.Generator, rt60_s: float, drr_db: float, samples: int,
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A direct impulse at 0 + Gaussian noise whose energy decays 60 dB in ``rt60_s``.

  The tail's energy is 10^(-drr_db / 10) of the direct path's; unit total energy.
  """
  t = np.arange(samples) / sample_rate
  tail = rng.standard_normal(samples) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)
  tail[0] = 0.0
  tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
  tail[0] = 1.0
  return tail / np.linalg.norm(tail)


def image_method_rir(rng: np.random.Generator, rt60_s: float, samples: int,
                     sample_rate: int = SAMPLE_RATE, max_order: int = 100) -> np.ndarray:
  """A shoebox room's RIR by the image method (pyroomacoustics), direct path moved to ~0.

  Room (3-10 x 3-8 x 2.4-4 m), source and microphone (>= 0.5 m from walls) are drawn; wall
  absorption follows Sabine's formula for ``rt60_s``. Rooms needing more than ``max_order``
  reflections (small rooms with long RT60; slow to simulate) are drawn again.
  """
  try:
    import pyroomacoustics as pra  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("config.augment.reverb.image_method > 0 needs pyroomacoustics: "
                      "pip install 'ge2e_jax[augment]', or set image_method=0") from e
  for _ in range(100):
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    try:
      absorption, order = pra.inverse_sabine(rt60_s, dims)
    except ValueError:  # the room is too large for this RT60
      continue
    if order <= max_order:
      break
  else:
    raise ValueError(f"no shoebox room in 100 draws gives RT60 {rt60_s} s with image order "
                     f"<= {max_order}")
  room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                     max_order=order)
  room.add_source(rng.uniform(0.5, dims - 0.5))
  room.add_microphone(rng.uniform(0.5, dims - 0.5))
  room.compute_rir()
  rir = np.asarray(room.rir[0][0], np.float64)
  start = max(int(np.argmax(np.abs(rir))) - 8, 0)  # keep the fractional-delay main lobe
  rir = rir[start:start + samples]
  rir = np.pad(rir, (0, samples - len(rir)))
  return rir / np.linalg.norm(rir)


@dataclasses.dataclass(frozen=True)
class RirBank:
  """(size, samples) unit-energy RIRs with the RT60 each was drawn for; 1 = image method."""
  rirs: np.ndarray
  rt60_s: np.ndarray
  image_method: np.ndarray


def build_rir_bank(options: ReverbOptions, sample_rate: int = SAMPLE_RATE) -> RirBank:
  """The bank, a pure function of ``options`` (``bank_seed`` included); host NumPy."""
  rng = np.random.default_rng(options.bank_seed)
  samples = int(round(options.rir_seconds * sample_rate))
  n_image = int(round(options.image_method * options.bank_size))
  rirs, rt60s = [], []
  for k in range(options.bank_size):
    rt60 = float(rng.uniform(*options.rt60_s))
    if k < n_image:
      rirs.append(image_method_rir(rng, rt60, samples, sample_rate))
    else:
      rirs.append(synthetic_rir(rng, rt60, float(rng.uniform(*options.drr_db)), samples,
                                sample_rate))
    rt60s.append(rt60)
  return RirBank(np.stack(rirs).astype(np.float32), np.asarray(rt60s),
                 np.arange(options.bank_size) < n_image)


# ------------------------------------------------------------------------------ augmenter
class Augmenter:
  """``augmenter(audio, key) -> audio``: the per-utterance augmentation of a batch.

  audio: (n, m, samples) float32 -- n speakers x m utterances, the device's shard -- or
  (K, n, m, samples) for MultiReader's stacked batches (each source augmented on its own).
  A kind with probability p is applied to round(p * n * m) utterances of the shard, chosen
  at random, and computed only for those (its cost scales with p). ``draw`` and ``apply``
  split the two halves for tests and ``apply_condition``.
  """

  def __init__(self, options: AugmentOptions, rir_bank: RirBank | None = None):
    options.validate()
    self.options = options
    if options.reverb.prob > 0 and rir_bank is None:
      rir_bank = build_rir_bank(options.reverb)
    self.rir_bank = rir_bank
    self.noise_bank = None
    if options.noise.prob > 0:
      rng = np.random.default_rng(options.noise.bank_seed)
      samples = int(round(options.noise.bank_seconds * SAMPLE_RATE))
      self.noise_bank = np.stack([colored_noise(rng, samples, COLORS[c])
                                  for c in _colors(options.noise.colors)]).astype(np.float32)

  def __call__(self, audio, key):
    if audio.ndim == 4:
      return jax.vmap(self)(audio, jax.random.split(key, audio.shape[0]))
    if audio.ndim != 3:
      raise ValueError(f"augment expects audio (n, m, samples) or (K, n, m, samples), got "
                       f"shape {audio.shape}")
    return self.apply(audio, self.draw(key, audio.shape[:-1]))

  def draw(self, key, batch_shape) -> dict:
    """{kind: {"index": (k,) utterances (flat, row-major) it applies to, params (k, ...)}}."""
    o = self.options
    utterances = math.prod(batch_shape)
    draws = {}
    for kind in o.enabled():
      count = int(round(getattr(o, kind).prob * utterances))
      if count == 0:
        continue
      most = o.babble.speakers[1]
      columns = 3 + 3 * most if kind == "babble" else 3
      # One uniform draw per kind, from a key of its own (switching one kind on or off does
      # not change the others' draws); few random ops, as they dominate compile time.
      u = jax.random.uniform(jax.random.fold_in(key, KINDS.index(kind)),
                             (utterances + count * columns,))
      d = {"index": jnp.argsort(u[:utterances])[:count]}  # a random subset of the utterances
      u = u[utterances:].reshape(count, columns)
      lerp = lambda col, bounds: bounds[0] + (bounds[1] - bounds[0]) * u[:, col]
      pick = lambda col, low, high: jnp.minimum(  # integers in [low, high)
          low + jnp.floor(u[:, col] * (high - low)).astype(jnp.int32), high - 1)
      sources = slice(3, 3 + most), slice(3 + most, 3 + 2 * most), slice(3 + 2 * most, None)
      if kind == "speed":
        d["factor"] = lerp(0, o.speed.factor)
      elif kind == "reverb":
        d["rir"] = pick(0, 0, len(self.rir_bank.rirs))
      elif kind == "babble":
        speakers = batch_shape[0] if len(batch_shape) == 2 else 2
        d["snr_db"] = lerp(0, o.babble.snr_db)
        d["count"] = pick(1, o.babble.speakers[0], most + 1)
        d["speaker_offset"] = pick(sources[0], 1, max(speakers, 2))  # (count, most)
        d["utterance"] = pick(sources[1], 0, batch_shape[-1])
        d["shift"] = u[:, sources[2]]
      elif kind == "noise":
        d["snr_db"] = lerp(0, o.noise.snr_db)
        d["color"] = pick(1, 0, len(self.noise_bank))
        d["start"] = u[:, 2]
      elif kind == "channel":
        d["low_hz"] = lerp(0, o.channel.low_hz)
        d["high_hz"] = lerp(1, o.channel.high_hz)
        d["mu_law"] = u[:, 2] < o.channel.mu_law_prob
      else:
        d["db"] = lerp(0, o.gain.db)
      draws[kind] = d
    return draws

  def apply(self, audio, draws: dict, lengths=None, babble=None):
    """Apply ``draws`` to audio (..., samples); ``lengths`` (...) valid samples (default all).

    ``babble`` (..., samples): the unscaled babble for each utterance; None makes it from
    the batch itself (``babble_from_batch``; audio must then be (n, m, samples)).
    """
    o = self.options
    shape, samples = audio.shape, audio.shape[-1]
    flat = audio.reshape(-1, samples)
    flat_lengths = None if lengths is None else jnp.asarray(lengths).reshape(-1)
    for kind in KINDS:
      if kind not in draws:
        continue
      d = draws[kind]
      index = d["index"]
      x = flat[index]
      length = None if flat_lengths is None else flat_lengths[index]
      valid = None if length is None else (
          jnp.arange(samples) < length[:, None]).astype(audio.dtype)
      if kind == "speed":
        x = speed(x, d["factor"], o.speed.interpolation, o.speed.half_taps, length)
      elif kind == "reverb":
        rirs = jnp.asarray(self.rir_bank.rirs)
        n_fft = _fft_size(samples + rirs.shape[-1] - 1)
        wet = jnp.fft.irfft(jnp.fft.rfft(x, n=n_fft) * jnp.fft.rfft(rirs, n=n_fft)[d["rir"]],
                            n=n_fft)[..., :samples].astype(x.dtype)
        x = wet if valid is None else wet * valid
      elif kind == "babble":
        if babble is None:
          sources = babble_from_batch(audio, d)
        else:
          sources = babble.reshape(-1, samples)[index]
        x = mix_at_snr(x, sources, d["snr_db"], valid)
      elif kind == "noise":
        bank = jnp.asarray(self.noise_bank)
        start = jnp.floor(d["start"] * bank.shape[-1]).astype(jnp.int32)
        offsets = (start[:, None] + jnp.arange(samples)) % bank.shape[-1]
        x = mix_at_snr(x, bank[d["color"][:, None], offsets], d["snr_db"], valid)
      elif kind == "channel":
        filtered = band_pass(x, d["low_hz"], d["high_hz"], o.channel.taps)
        filtered = jnp.where(d["mu_law"][:, None], mu_law(filtered), filtered)
        x = filtered if valid is None else filtered * valid
      else:
        x = gain(x, d["db"])
      flat = flat.at[index].set(x, unique_indices=True)
    return flat.reshape(shape)


def babble_from_batch(audio, babble_draws):
  """For the drawn utterances of (n, m, S) audio, the sum of ``count`` other speakers' ones.

  Source k of flat utterance u = (i, j) is utterance ``utterance[k]`` of speaker
  (i + speaker_offset[k]) mod n, circularly shifted by ``shift[k]`` of its length; always
  taken from the batch before augmentation.
  """
  n, m, samples = audio.shape
  if n < 2:
    raise ValueError(f"babble needs >= 2 speakers per device shard, got {n}: lower the "
                     "device count, raise data.n_speakers, or set augment.babble.prob=0")
  d = babble_draws
  speaker = (d["index"][:, None] // m + d["speaker_offset"]) % n  # (k, sources)
  row = speaker * m + d["utterance"]
  shift = jnp.floor(d["shift"] * samples).astype(jnp.int32)
  used = jnp.arange(row.shape[-1]) < d["count"][:, None]
  flat = audio.reshape(-1)
  t = jnp.arange(samples)
  total = jnp.zeros((row.shape[0], samples), audio.dtype)
  for k in range(row.shape[-1]):  # one (k, S) gather per source keeps memory at one batch
    index = row[:, k, None] * samples + (t + shift[:, k, None]) % samples
    total = total + flat[index] * used[:, k, None]
  return total


def default_config() -> dict:
  """``config.augment``'s defaults: every kind's fields, off (prob 0)."""
  return dataclasses.asdict(AugmentOptions())


def config_problems(values) -> list:
  """Every value of ``config.augment`` the augmenter could not use, as ``config.augment...``."""
  try:
    AugmentOptions.from_dict(values)
  except ValueError as err:
    return [str(err)]
  return []


def make_augmenter(config) -> Augmenter | None:
  """An ``Augmenter`` from ``config.augment`` (dict-like), or None when every kind is off."""
  options = AugmentOptions.from_dict(config)
  return Augmenter(options) if options.enabled() else None


# ------------------------------------------------------------------------------ evaluation
_NUMBER = r"-?\d+(?:\.\d+)?"
_RANGE = rf"(?P<low>{_NUMBER})(?:\.\.(?P<high>{_NUMBER}))?"
_CONDITION = {
    "noise": re.compile(rf"(?P<color>noise|white|pink|brown)_snr{_RANGE}$"),
    "babble": re.compile(rf"babble_snr{_RANGE}$"),
    "reverb": re.compile(rf"(?P<rir>reverb|room)(?:_rt{_RANGE})?$"),
    "channel": re.compile(r"telephone$"),
    "gain": re.compile(rf"gain_db{_RANGE}$"),
    "speed": re.compile(rf"speed{_RANGE}$"),
}
_BUCKET = SAMPLE_RATE  # waves are zero-padded to a multiple of 1 s (one compile each)


def condition_options(condition: str, seed: int = 0) -> AugmentOptions:
  """AugmentOptions with probability 1 for each '+'-joined part of ``condition``.

  Parts: ``noise_snr5`` / ``noise_snr5..15`` (white, pink or brown per utterance; or
  ``white_``/``pink_``/``brown_snr..``), ``babble_snr10`` (3 other speakers), ``reverb`` /
  ``reverb_rt0.6`` / ``reverb_rt0.3..0.9`` (a bank of 32 synthetic RIRs; default RT60
  0.3..0.9 s), ``room[_rt..]`` (the same with image-method shoebox RIRs; needs
  pyroomacoustics), ``telephone`` (300-3400 Hz, mu-law), ``gain_db-6``, ``speed1.1``.
  ``clean`` is no part at all. A range draws uniformly per utterance; ``seed`` also seeds
  the RIR bank.
  """
  kinds = {}
  for part in ([] if condition == "clean" else condition.split("+")):
    for kind, pattern in _CONDITION.items():
      match = pattern.match(part)
      if match:
        break
    else:
      raise ValueError(f"unknown augmentation condition part {part!r} in {condition!r}; "
                       "expected noise_snrX[..Y], babble_snrX[..Y], reverb[_rtX[..Y]], "
                       "room[_rtX[..Y]], "
                       "telephone, gain_dbX[..Y], speedX[..Y] joined by '+', or 'clean'")
    if kind in kinds:
      raise ValueError(f"condition {condition!r} names {kind} twice")
    low, high = match.groupdict().get("low"), match.groupdict().get("high")
    bounds = None if low is None else (float(low), float(high or low))
    if kind == "noise":
      color = match.group("color")
      kinds[kind] = NoiseOptions(1.0, bounds, "white,pink,brown" if color == "noise" else color)
    elif kind == "babble":
      kinds[kind] = BabbleOptions(1.0, bounds, (3, 3))
    elif kind == "reverb":
      kinds[kind] = ReverbOptions(1.0, bounds or (0.3, 0.9), bank_size=32, bank_seed=seed,
                                  image_method=float(match.group("rir") == "room"))
    elif kind == "channel":
      kinds[kind] = ChannelOptions(1.0, (300.0, 300.0), (3400.0, 3400.0), mu_law_prob=1.0)
    elif kind == "gain":
      kinds[kind] = GainOptions(1.0, bounds)
    else:
      kinds[kind] = SpeedOptions(1.0, bounds)
  options = AugmentOptions(**kinds)
  options.validate()
  return options


def apply_condition(waves, condition: str, seed: int = 0, speakers=None) -> list:
  """The ``condition`` version of each 1-D float waveform (16 kHz), same lengths, float32.

  Deterministic: wave i's draws come from fold_in(key(seed), i), whatever the other waves.
  Babble (from 3 other speakers' waves, each tiled/cropped to the target's length at a
  random offset) needs ``speakers``, one label per wave. Runs with JAX on the host's
  default device; each wave is padded to a multiple of 1 s, so lengths share compiles.
  """
  options = condition_options(condition, seed)
  waves = [np.asarray(w, np.float32).reshape(-1) for w in waves]
  if not options.enabled():
    return [w.copy() for w in waves]
  augmenter = Augmenter(options)
  if "babble" in options.enabled():
    if speakers is None or len(speakers) != len(waves):
      raise ValueError(f"condition {condition!r} has babble: pass speakers, one per wave")
    speakers = np.asarray(speakers)
    if len(set(speakers.tolist())) < 2:
      raise ValueError(f"condition {condition!r} has babble: waves of >= 2 speakers needed")
  run = _condition_fn(augmenter)
  out = []
  for i, wave in enumerate(waves):
    length = len(wave)
    padded = -(-max(length, 1) // _BUCKET) * _BUCKET
    key = jax.random.fold_in(jax.random.key(seed), i)
    babble = np.zeros(padded, np.float32)
    if speakers is not None and "babble" in options.enabled():
      babble[:length] = _babble_for(waves, speakers, i, length,
                                    np.random.default_rng([seed, i]))
    result = run(np.pad(wave, (0, padded - length))[None], key, np.asarray([length]),
                 babble[None])
    out.append(np.asarray(result[0, :length]))
  return out


def _condition_fn(augmenter: Augmenter):
  @jax.jit
  def run(audio, key, lengths, babble):
    draws = augmenter.draw(key, audio.shape[:-1])
    return augmenter.apply(audio, draws, lengths=lengths, babble=babble)
  return run


def _babble_for(waves, speakers, i, length, rng) -> np.ndarray:
  """The sum of 3 waves of other speakers, each tiled to ``length`` from a random offset."""
  others = np.flatnonzero(speakers != speakers[i])
  total = np.zeros(length, np.float32)
  for j in rng.choice(others, size=min(3, len(others)), replace=False):
    source = waves[j]
    start = int(rng.integers(len(source)))
    total += np.resize(np.roll(source, -start), length)
  return total

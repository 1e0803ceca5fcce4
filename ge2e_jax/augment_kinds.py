"""The augmentation kinds, one registered class each, in the order they are applied.

A kind holds its ``Options`` (its ``config.augment.<name>`` section: every field a
``settings.setting`` with default, check and help; ``prob`` is the fraction of utterances it
is applied to), turns ``columns()`` uniforms per drawn utterance into its parameters
(``draw``), transforms the drawn utterances keeping their length (``apply``), and names the
held-out condition token that selects it (``condition``, ``from_condition``). The
``Augmenter``, ``config.augment``'s defaults and checks and the condition grammar all iterate
``REGISTRY``: adding a kind is one class here and its test. Register a new kind after the
others: each kind draws from a key folded with its position in ``REGISTRY``, so appending
keeps every existing configuration's batches bit-identical.
"""

import abc
import dataclasses
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ge2e_jax import augment_dsp, rir, settings
from ge2e_jax.features import SAMPLE_RATE

REGISTRY = {}  # name -> Kind subclass, in the order the kinds are applied

_NUMBER = r"-?\d+(?:\.\d+)?"
RANGE = rf"(?P<low>{_NUMBER})(?:\.\.(?P<high>{_NUMBER}))?"  # a condition's "X" or "X..Y"


def register(name: str):
  """Class decorator: adds a ``Kind`` to ``REGISTRY`` as ``config.augment.<name>``."""
  def add(cls):
    if name in REGISTRY:
      raise ValueError(f"augmentation kind {name!r} is registered twice")
    cls.name = name
    REGISTRY[name] = cls
    return cls
  return add


class Drawn(NamedTuple):
  """What a kind's ``apply`` sees of the batch besides the drawn utterances' audio."""
  length: jax.Array | None  # (k,) valid samples of each drawn utterance; None: all
  valid: jax.Array | None   # (k, samples) 1.0 within ``length``; None: all valid
  batch: jax.Array          # the whole batch before augmentation
  babble: jax.Array | None  # (utterances, samples) babble sources from the caller, or None


class Kind(abc.ABC):
  """One augmentation kind, built (on the host) from its ``Options``."""
  name: str             # set by ``register``
  Options: type         # a frozen dataclass of ``settings.setting`` fields, ``prob`` first
  condition: re.Pattern  # its held-out condition token
  condition_help: str   # the token's grammar, for the error on an unknown token

  def __init__(self, options):
    self.options = options

  @staticmethod
  def problems(options) -> list:  # pylint: disable=unused-argument
    """What the fields' own checks cannot see (relations between fields), each as
    ``"field=value: expected ..."``."""
    return []

  def columns(self) -> int:
    """How many uniforms ``draw`` takes per drawn utterance."""
    return 3

  def group(self, batch_shape) -> int:  # pylint: disable=unused-argument
    """How many consecutive utterances share one draw (1: every utterance its own)."""
    return 1

  @abc.abstractmethod
  def draw(self, u, batch_shape) -> dict:
    """Parameters (k, ...) from uniforms ``u`` (k, columns) of the k drawn utterances."""

  @abc.abstractmethod
  def apply(self, x, d: dict, drawn: Drawn):
    """The drawn utterances x (k, samples) with parameters ``d`` applied."""

  @classmethod
  @abc.abstractmethod
  def from_condition(cls, match: re.Match, seed: int):
    """Options with prob 1 for a matched condition token; ``seed`` seeds any bank
    (conditions pass one from ``HELD_OUT_BANK_SEED`` up)."""


def lerp(u, bounds):
  """Uniforms mapped onto [low, high]."""
  return bounds[0] + (bounds[1] - bounds[0]) * u


def pick(u, low, high):
  """Uniforms mapped onto the integers in [low, high)."""
  return jnp.minimum(low + jnp.floor(u * (high - low)).astype(jnp.int32), high - 1)


def bounds(match: re.Match):
  """A condition's (low, high) from its ``RANGE``; None where it gave none."""
  low, high = match.groupdict().get("low"), match.groupdict().get("high")
  return None if low is None else (float(low), float(high or low))


PROB = settings.number(0, 1)
PROB_HELP = "fraction of each device's utterances it is applied to (0 = off)"
RANGE_HELP = "drawn uniformly per utterance from (low, high)"
SHORT_FILLS = ("repeat", "pad")
# Held-out conditions (experiments/conditions.py) seed their banks from here up, training
# below (bank_seed, default 0): no model is scored through the noise or rooms it trained on.
HELD_OUT_BANK_SEED = 1 << 31
BANK_SEED_HELP = f"seeds the bank (held-out conditions use {HELD_OUT_BANK_SEED} + their seed)"
ODD_TAPS = settings.Check(lambda v: settings.integer(1).test(v) and v % 2 == 1,
                          "an odd integer >= 1")
NOISE_COLORS = settings.Check(
    lambda v: isinstance(v, str) and bool(_colors(v)) and set(_colors(v)) <= set(
        augment_dsp.COLORS),
    f"comma-separated names from {tuple(augment_dsp.COLORS)}")


def _colors(text: str) -> tuple:
  return tuple(c.strip() for c in text.split(",") if c.strip())


def fir_taps():
  """The ``taps`` setting of the FIR kinds (channel, narrowband)."""
  return settings.setting(255, ODD_TAPS, "Blackman window: ~5.5 * 16000 / taps Hz transition")


def above_nyquist(name: str, edges: tuple) -> list:
  """A problem if a band edge's high end is not below 8 kHz."""
  if edges[1] < SAMPLE_RATE / 2:
    return []
  return [f"{name}={edges!r}: expected a high end below {SAMPLE_RATE // 2} (Nyquist)"]


@register("speed")
class Speed(Kind):
  """Speed perturbation (tempo and pitch together, like Kaldi's ``speed``): resampling by a
  drawn factor; the output is cropped or tiled to the input length.

  ``per="speaker"`` draws one factor for all m utterances of a speaker (and picks speakers,
  not utterances, at ``prob``): a speaker's batch becomes another voice, higher or lower
  with its formants scaled. GE2E compares speakers only within a batch, so each step sees
  new virtual speakers (the speed-perturbed speakers of Kaldi and WeSpeaker recipes)
  without relabelling; ``"utterance"`` perturbs each utterance on its own, a nuisance the
  encoder must ignore.
  """

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    factor: tuple = settings.setting((0.9, 1.1), settings.span(0, low_open=True),
                                     "> 1 is faster (and higher); " + RANGE_HELP)
    interpolation: str = settings.setting(
        "linear", settings.one_of("linear", "sinc"),
        "linear, or windowed sinc (anti-aliased; 2 * half_taps gathers a sample)")
    half_taps: int = settings.setting(8, settings.integer(1),
                                      "sinc kernel half-width in input samples")
    per: str = settings.setting(
        "utterance", settings.one_of("utterance", "speaker"),
        "draw per utterance, or once per speaker (all its utterances alike: new voices)")

  condition = re.compile(rf"speed{RANGE}$")
  condition_help = "speedX[..Y]"

  def group(self, batch_shape) -> int:
    if self.options.per == "utterance":
      return 1
    if len(batch_shape) != 2:
      raise ValueError(f"speed.per=speaker needs batches (speakers, utterances), got shape "
                       f"{tuple(batch_shape)}")
    return batch_shape[1]

  def draw(self, u, batch_shape):
    return {"factor": lerp(u[:, 0], self.options.factor)}

  def apply(self, x, d, drawn):
    return augment_dsp.speed(x, d["factor"], self.options.interpolation,
                             self.options.half_taps, drawn.length)

  @classmethod
  def from_condition(cls, match, seed):
    return cls.Options(prob=1.0, factor=bounds(match))


@register("reverb")
class Reverb(Kind):
  """Convolution (FFT) with a room impulse response of a bank built on the host
  (``ge2e_jax.rir``)."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    rt60_s: tuple = settings.setting((0.2, 0.8), settings.span(0, low_open=True),
                                     "reverberation time of each bank RIR, " + RANGE_HELP)
    drr_db: tuple = settings.setting((-3.0, 10.0), settings.span(),
                                     "direct-to-reverberant energy ratio (synthetic RIRs)")
    rir_seconds: float = settings.setting(0.5, settings.number(0, low_open=True),
                                          "RIR length kept in the bank")
    bank_size: int = settings.setting(128, settings.integer(1), "RIRs in the bank")
    image_method: float = settings.setting(
        0.0, settings.number(0, 1),
        "fraction of the bank from image-method shoebox rooms (needs pyroomacoustics)")
    bank_seed: int = settings.setting(0, settings.integer(0), BANK_SEED_HELP)

  condition = re.compile(rf"(?P<rir>reverb|room)(?:_rt{RANGE})?$")
  condition_help = "reverb[_rtX[..Y]], room[_rtX[..Y]]"

  def __init__(self, options):
    super().__init__(options)
    self.bank = rir.build_rir_bank(options)

  def draw(self, u, batch_shape):
    return {"rir": pick(u[:, 0], 0, len(self.bank.rirs))}

  def apply(self, x, d, drawn):
    rirs = jnp.asarray(self.bank.rirs)
    samples = x.shape[-1]
    n_fft = augment_dsp.fft_size(samples + rirs.shape[-1] - 1)
    wet = jnp.fft.irfft(jnp.fft.rfft(x, n=n_fft) * jnp.fft.rfft(rirs, n=n_fft)[d["rir"]],
                        n=n_fft)[..., :samples].astype(x.dtype)
    return wet if drawn.valid is None else wet * drawn.valid

  @classmethod
  def from_condition(cls, match, seed):
    """A bank of 32 RIRs, RT60 0.3..0.9 s unless given; ``room`` is image-method."""
    return cls.Options(prob=1.0, rt60_s=bounds(match) or (0.3, 0.9), bank_size=32,
                       bank_seed=seed, image_method=float(match.group("rir") == "room"))


@register("babble")
class Babble(Kind):
  """Other speakers' utterances of the batch (the device's own shard), 1..k of them,
  circularly shifted, summed and added at a drawn SNR."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    snr_db: tuple = settings.setting((10.0, 20.0), settings.span(), RANGE_HELP)
    speakers: tuple = settings.setting((1, 3), settings.span(1, integers=True),
                                       "how many other utterances are summed, " + RANGE_HELP)

  condition = re.compile(rf"babble_snr{RANGE}$")
  condition_help = "babble_snrX[..Y]"

  def columns(self):
    return 3 + 3 * self.options.speakers[1]

  def draw(self, u, batch_shape):
    most = self.options.speakers[1]
    sources = slice(3, 3 + most), slice(3 + most, 3 + 2 * most), slice(3 + 2 * most, None)
    speakers = batch_shape[0] if len(batch_shape) == 2 else 2
    return {"snr_db": lerp(u[:, 0], self.options.snr_db),
            "count": pick(u[:, 1], self.options.speakers[0], most + 1),
            "speaker_offset": pick(u[:, sources[0]], 1, max(speakers, 2)),  # (k, most)
            "utterance": pick(u[:, sources[1]], 0, batch_shape[-1]),
            "shift": u[:, sources[2]]}

  def apply(self, x, d, drawn):
    if drawn.babble is None:
      sources = babble_from_batch(drawn.batch, d)
    else:
      sources = drawn.babble[d["index"]]
    return augment_dsp.mix_at_snr(x, sources, d["snr_db"], drawn.valid)

  @classmethod
  def from_condition(cls, match, seed):
    """Always 3 other speakers (``experiments.conditions`` gives their waves)."""
    return cls.Options(prob=1.0, snr_db=bounds(match), speakers=(3, 3))


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


@register("noise")
class Noise(Kind):
  """Coloured noise (white / pink / brown: white noise shaped to a 1 / f^e power spectrum)
  from a bank built on the host, added at a drawn SNR."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    snr_db: tuple = settings.setting((5.0, 20.0), settings.span(), RANGE_HELP)
    colors: str = settings.setting("white,pink,brown", NOISE_COLORS,
                                   "drawn uniformly per utterance")
    bank_seconds: float = settings.setting(
        30.0, settings.number(0, low_open=True),
        "per colour; utterances take random stretches of it")
    bank_seed: int = settings.setting(0, settings.integer(0), BANK_SEED_HELP)

  condition = re.compile(rf"(?P<color>noise|white|pink|brown)_snr{RANGE}$")
  condition_help = "noise_snrX[..Y] (or white_/pink_/brown_snr...)"

  def __init__(self, options):
    super().__init__(options)
    rng = np.random.default_rng(options.bank_seed)
    samples = int(round(options.bank_seconds * SAMPLE_RATE))
    self.bank = np.stack([augment_dsp.colored_noise(rng, samples, augment_dsp.COLORS[c])
                          for c in _colors(options.colors)]).astype(np.float32)

  def draw(self, u, batch_shape):
    return {"snr_db": lerp(u[:, 0], self.options.snr_db),
            "color": pick(u[:, 1], 0, len(self.bank)), "start": u[:, 2]}

  def apply(self, x, d, drawn):
    bank = jnp.asarray(self.bank)
    start = jnp.floor(d["start"] * bank.shape[-1]).astype(jnp.int32)
    offsets = (start[:, None] + jnp.arange(x.shape[-1])) % bank.shape[-1]
    return augment_dsp.mix_at_snr(x, bank[d["color"][:, None], offsets], d["snr_db"],
                                  drawn.valid)

  @classmethod
  def from_condition(cls, match, seed):
    """``noise_`` draws white, pink or brown per utterance; ``pink_`` etc. that colour."""
    color = match.group("color")
    return cls.Options(prob=1.0, snr_db=bounds(match),
                       colors="white,pink,brown" if color == "noise" else color,
                       bank_seed=seed)


@register("channel")
class Channel(Kind):
  """Telephone channel: a linear-phase FIR band-pass with drawn edges, optionally a
  G.711-style mu-law 8-bit codec."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    low_hz: tuple = settings.setting((200.0, 400.0), settings.span(0, low_open=True),
                                     "lower band edge, " + RANGE_HELP)
    high_hz: tuple = settings.setting((3000.0, 3800.0), settings.span(0, low_open=True),
                                      "upper band edge (below 8000 Hz), " + RANGE_HELP)
    taps: int = fir_taps()
    mu_law_prob: float = settings.setting(0.5, settings.number(0, 1),
                                          "fraction of the channel's utterances with mu-law")

  condition = re.compile(r"telephone$")
  condition_help = "telephone"

  @staticmethod
  def problems(options):
    found = []
    if options.low_hz[1] >= options.high_hz[0]:
      found.append(f"low_hz={options.low_hz!r}: expected a high end below high_hz's low end "
                   f"({options.high_hz[0]})")
    return found + above_nyquist("high_hz", options.high_hz)

  def draw(self, u, batch_shape):
    return {"low_hz": lerp(u[:, 0], self.options.low_hz),
            "high_hz": lerp(u[:, 1], self.options.high_hz),
            "mu_law": u[:, 2] < self.options.mu_law_prob}

  def apply(self, x, d, drawn):
    filtered = augment_dsp.band_pass(x, d["low_hz"], d["high_hz"], self.options.taps)
    filtered = jnp.where(d["mu_law"][:, None], augment_dsp.mu_law(filtered), filtered)
    return filtered if drawn.valid is None else filtered * drawn.valid

  @classmethod
  def from_condition(cls, match, seed):
    """300-3400 Hz with mu-law, every utterance."""
    return cls.Options(prob=1.0, low_hz=(300.0, 300.0), high_hz=(3400.0, 3400.0),
                       mu_law_prob=1.0)


@register("gain")
class Gain(Kind):
  """A drawn gain in dB (no clipping)."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    db: tuple = settings.setting((-6.0, 6.0), settings.span(), RANGE_HELP)

  condition = re.compile(rf"gain_db{RANGE}$")
  condition_help = "gain_dbX[..Y]"

  def draw(self, u, batch_shape):
    return {"db": lerp(u[:, 0], self.options.db)}

  def apply(self, x, d, drawn):
    return augment_dsp.gain(x, d["db"])

  @classmethod
  def from_condition(cls, match, seed):
    return cls.Options(prob=1.0, db=bounds(match))


@register("short")
class Short(Kind):
  """A short stretch of the utterance filling its whole length the way inference fills a
  window an utterance is too short for: repeated (``fill="repeat"``, ``wav[j % len(wav)]``,
  the ``window_rule`` "overlap") or ending it after zeros (``fill="pad"``, "overlap_padded").
  Crops of 1.4-1.8 s of longer utterances never show the encoder a word-long clip the way
  inference feeds it one; with this kind, a fraction of the batch does. Applied after the
  noise and room kinds, so the stretch carries its noise and room as a recorded clip does."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    seconds: tuple = settings.setting((0.3, 1.2), settings.span(0, low_open=True),
                                      "length of the stretch, " + RANGE_HELP)
    fill: str = settings.setting("repeat", settings.one_of(*SHORT_FILLS),
                                 "'repeat' the stretch over the length or 'pad' zeros before it")

  condition = re.compile(rf"short{RANGE}$")
  condition_help = "shortX[..Y] (seconds)"

  def columns(self):
    return 2

  def draw(self, u, batch_shape):
    samples = jnp.round(lerp(u[:, 0], self.options.seconds) * SAMPLE_RATE)
    return {"samples": jnp.maximum(samples, 1).astype(jnp.int32), "start": u[:, 1]}

  def apply(self, x, d, drawn):
    total = x.shape[-1] if drawn.length is None else drawn.length
    keep = jnp.minimum(d["samples"], total)
    start = jnp.floor(d["start"] * (total - keep + 1)).astype(jnp.int32)  # in [0, total - keep]
    t = jnp.arange(x.shape[-1])
    if self.options.fill == "repeat":
      out = jnp.take_along_axis(x, start[:, None] + t % keep[:, None], axis=-1)
      return out if drawn.valid is None else out * drawn.valid
    end = jnp.reshape(total, (-1, 1))  # the stretch ends at the last valid sample
    lead = end - keep[:, None]
    inside = (t >= lead) & (t < end)
    index = jnp.clip(start[:, None] + t - lead, 0, x.shape[-1] - 1)
    return jnp.where(inside, jnp.take_along_axis(x, index, axis=-1), 0.0)

  @classmethod
  def from_condition(cls, match, seed):
    return cls.Options(prob=1.0, seconds=bounds(match))


@register("narrowband")
class Narrowband(Kind):
  """Audio sampled at a lower rate and brought back to 16 kHz, as 8 kHz telephone prompts
  are: a linear-phase FIR low-pass at a drawn cutoff, the low end kept (``channel`` models
  a telephone line's band-pass instead), optionally through a mu-law codec between two
  such low-passes, so its quantisation noise stays below the cutoff as a codec at the
  lower rate leaves it."""

  @dataclasses.dataclass(frozen=True)
  class Options:
    prob: float = settings.setting(0.0, PROB, PROB_HELP)
    cutoff_hz: tuple = settings.setting((3400.0, 4000.0), settings.span(0, low_open=True),
                                        "low-pass edge (below 8000 Hz; 4000: sampled at 8 "
                                        "kHz), " + RANGE_HELP)
    taps: int = fir_taps()
    mu_law_prob: float = settings.setting(0.0, settings.number(0, 1),
                                          "fraction of its utterances through mu-law")

  condition = re.compile(rf"narrowband{RANGE}$")
  condition_help = "narrowbandX[..Y] (cutoff Hz)"

  @staticmethod
  def problems(options):
    return above_nyquist("cutoff_hz", options.cutoff_hz)

  def columns(self):
    return 2

  def draw(self, u, batch_shape):
    return {"cutoff_hz": lerp(u[:, 0], self.options.cutoff_hz),
            "mu_law": u[:, 1] < self.options.mu_law_prob}

  def apply(self, x, d, drawn):
    low = jnp.zeros_like(d["cutoff_hz"])
    out = augment_dsp.band_pass(x, low, d["cutoff_hz"], self.options.taps)
    if self.options.mu_law_prob > 0:  # the codec's second filter only where one can be drawn
      coded = augment_dsp.band_pass(augment_dsp.mu_law(out), low, d["cutoff_hz"],
                                    self.options.taps)
      out = jnp.where(d["mu_law"][:, None], coded, out)
    return out if drawn.valid is None else out * drawn.valid

  @classmethod
  def from_condition(cls, match, seed):
    """Low-passed at the cutoff(s), no codec."""
    return cls.Options(prob=1.0, cutoff_hz=bounds(match))

"""Held-out conditions: fixed noisy, reverberant, babble or telephone versions of evaluation
waveforms, made on the host by the training augmentation's own kinds.

A condition is ``clean`` or tokens joined by ``+``, each matched by one kind of
``ge2e_jax.augment_kinds.REGISTRY`` (its ``condition`` pattern and ``from_condition``), e.g.
"noise_snr5..15", "reverb_rt0.6", "babble_snr10+telephone".
"""

import jax
import numpy as np

from ge2e_jax import augment, augment_kinds
from ge2e_jax.features import SAMPLE_RATE

_BUCKET = SAMPLE_RATE  # waves are zero-padded to a multiple of 1 s (one compile each)


def condition_options(condition: str, seed: int = 0) -> augment.AugmentOptions:
  """AugmentOptions with probability 1 for each '+'-joined part of ``condition``.

  Each part is one kind's token (``Kind.condition_help``): ``noise_snr5`` /
  ``noise_snr5..15`` (white, pink or brown per utterance; or ``white_``/``pink_``/
  ``brown_snr..``), ``babble_snr10`` (3 other speakers), ``reverb`` / ``reverb_rt0.6`` /
  ``reverb_rt0.3..0.9`` (a bank of 32 synthetic RIRs; default RT60 0.3..0.9 s),
  ``room[_rt..]`` (the same with image-method shoebox RIRs; needs pyroomacoustics),
  ``telephone`` (300-3400 Hz, mu-law), ``gain_db-6``, ``speed1.1``. ``clean`` is no part at
  all. A range draws uniformly per utterance; ``seed`` also seeds the noise and RIR banks,
  apart from training's (``augment_kinds.HELD_OUT_BANK_SEED``).
  """
  kinds = {}
  for part in ([] if condition == "clean" else condition.split("+")):
    for name, kind in augment_kinds.REGISTRY.items():
      match = kind.condition.match(part)
      if match:
        break
    else:
      grammar = ", ".join(kind.condition_help for kind in augment_kinds.REGISTRY.values())
      raise ValueError(f"unknown augmentation condition part {part!r} in {condition!r}; "
                       f"expected {grammar} joined by '+', or 'clean'")
    if name in kinds:
      raise ValueError(f"condition {condition!r} names {name} twice")
    kinds[name] = kind.from_condition(match, augment_kinds.HELD_OUT_BANK_SEED + seed)
  options = augment.AugmentOptions(**kinds)
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
  augmenter = augment.Augmenter(options)
  babble = "babble" in options.enabled()
  if babble:
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
    sources = np.zeros(padded, np.float32)
    if babble:
      sources[:length] = _babble_for(waves, speakers, i, length,
                                     np.random.default_rng([seed, i]))
    result = run(np.pad(wave, (0, padded - length))[None], key, np.asarray([length]),
                 sources[None])
    out.append(np.asarray(result[0, :length]))
  return out


def _condition_fn(augmenter: augment.Augmenter):
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

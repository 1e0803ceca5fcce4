"""Augmented batches and held-out conditions are pinned bit for bit (sha256 of the float32
bytes): a refactor of the augmentation code must not change a single training batch, so a
resumed or repeated run stays bit-identical. Expected values come from the code before the
kinds became registered classes (the noise and reverb conditions' from the change that drew
their banks apart from training's), computed with XLA:CPU (another backend rounds its FFTs
and transcendentals differently)."""

import hashlib

import jax
import numpy as np
import pytest

from experiments import conditions
from ge2e_jax import augment

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="pinned on XLA:CPU")

N, M, S = 4, 3, 4000
SMALL = {"reverb": {"bank_size": 4, "rir_seconds": 0.1}, "noise": {"bank_seconds": 1.0}}
KEY = 7


def sha(arrays) -> str:
  digest = hashlib.sha256()
  for a in arrays:
    digest.update(np.ascontiguousarray(a, np.float32).tobytes())
  return digest.hexdigest()[:16]


def augmenter(probs: dict, **extra):
  options = {kind: {"prob": p, **SMALL.get(kind, {}), **extra.get(kind, {})}
             for kind, p in probs.items()}
  return augment.Augmenter(augment.AugmentOptions.from_dict(options))


@pytest.fixture(scope="module")
def batch():
  rs = np.random.RandomState(0)
  envelope = np.abs(np.sin(np.linspace(0, 5, S)))
  return (0.1 * rs.randn(N, M, S) * envelope).astype(np.float32)


ALONE = {
    "speed": "fcc886d4285f0dc2",
    "reverb": "b728a4bea4020f18",
    "babble": "927fc257ac92df5f",
    "noise": "c371b0f4d46c6244",
    "channel": "aaff9321064cba1e",
    "gain": "e917006a280dc4aa",
}


@pytest.mark.parametrize("kind", sorted(ALONE))
def test_each_kind_alone_is_bit_identical_to_the_pinned_batch(batch, kind):
  out = jax.jit(augmenter({kind: 1.0}).__call__)(batch, jax.random.key(KEY))
  assert sha([out]) == ALONE[kind]


def test_every_kind_on_is_bit_identical_to_the_pinned_batch(batch):
  everything = augmenter({kind: 0.5 for kind in ALONE},  # the pinned kinds, not later ones
                         speed={"interpolation": "sinc", "half_taps": 4})
  fn = jax.jit(everything.__call__)
  stacked = np.stack([batch, batch[::-1]])  # MultiReader's (K, n, m, samples)
  assert sha([fn(batch, jax.random.key(KEY))]) == "eb190ba9df4cb5d2"
  assert sha([fn(stacked, jax.random.key(KEY + 1))]) == "0df4e91c58ad8e14"


WAVES = [np.random.RandomState(n).randn(n).astype(np.float32) * 0.1
         for n in (7000, 16000, 5500, 9000)]
SPEAKERS = ["a", "a", "b", "c"]
CONDITIONS = {
    "noise_snr5..15": "8e7e46a5477fce24",
    "pink_snr10": "441fe374fcf0d6c6",
    "reverb_rt0.4..0.6": "510e2021ad6f92ae",
    "babble_snr10+telephone": "09ab085367073cda",
    "gain_db-6+speed1.1": "9d827747811d12e2",
}


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_conditions_are_bit_identical_to_the_pinned_waves(condition):
  out = conditions.apply_condition(WAVES, condition, seed=3, speakers=SPEAKERS)
  assert sha(out) == CONDITIONS[condition]

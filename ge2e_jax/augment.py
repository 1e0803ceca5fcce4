"""Per-utterance data augmentation of raw 16 kHz audio, in JAX, inside the jitted train step.

The kinds (``augment_kinds.REGISTRY``: speed, reverb, babble, noise, channel, gain, short,
narrowband, applied in that order) are each applied to a random fraction ``prob`` of the
utterances, with parameters drawn per utterance from their own ranges
(``config.augment.<kind>``); a kind may draw once per speaker instead (``Kind.group``:
``speed.per=speaker``).

Every transform keeps the length. Draws are a pure function of the key, so a training batch
stays a pure function of (seed, step) and exact resume holds. A kind with probability p is
applied to round(p * utterances) of each device's shard, a random subset, and computed for
those only (gather, transform, scatter back): its cost scales with p, and p = 0 traces
nothing. Held-out conditions reuse the kinds: ``experiments/conditions.py``.
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from ge2e_jax import augment_kinds, settings

KINDS = tuple(augment_kinds.REGISTRY)


class _AugmentOptionsMethods:
  """The methods of ``AugmentOptions``, whose fields (one per kind) are made below."""

  @classmethod
  def from_dict(cls, values) -> "AugmentOptions":
    """From ``config.augment`` (a dict or ConfigDict of kind -> fields); checks every field."""
    options = settings.build(cls, values, "augment")
    options.validate()
    return options

  def enabled(self) -> tuple:
    return tuple(k for k in KINDS if getattr(self, k).prob > 0)

  def problems(self) -> list:
    """Every bad field as ``config.augment.<kind>.<field>=...``; once all pass, each kind's
    relations between its fields."""
    found = settings.problems(type(self), dataclasses.asdict(self), "augment")
    return found or [f"config.augment.{name}.{problem}"
                     for name, kind in augment_kinds.REGISTRY.items()
                     for problem in kind.problems(getattr(self, name))]

  def validate(self):
    found = self.problems()
    if found:
      raise settings.SettingError("; ".join(found))


AugmentOptions = dataclasses.make_dataclass(
    "AugmentOptions",
    [(name, kind.Options, kind.Options()) for name, kind in augment_kinds.REGISTRY.items()],
    bases=(_AugmentOptionsMethods,), frozen=True, namespace={"__module__": __name__})


class Augmenter:
  """``augmenter(audio, key) -> audio``: the per-utterance augmentation of a batch.

  audio: (n, m, samples) float32 -- n speakers x m utterances, the device's shard -- or
  (K, n, m, samples) for MultiReader's stacked batches (each source augmented on its own).
  A kind with probability p is applied to round(p * n * m) utterances of the shard, chosen
  at random, and computed only for those (its cost scales with p). ``draw`` and ``apply``
  split the two halves for tests and held-out conditions. ``kinds``: the enabled kinds,
  built (their banks too) on the host.
  """

  def __init__(self, options: AugmentOptions):
    options.validate()
    self.options = options
    self.kinds = {name: augment_kinds.REGISTRY[name](getattr(options, name))
                  for name in options.enabled()}

  def __call__(self, audio, key):
    if audio.ndim == 4:
      return jax.vmap(self)(audio, jax.random.split(key, audio.shape[0]))
    if audio.ndim != 3:
      raise ValueError(f"augment expects audio (n, m, samples) or (K, n, m, samples), got "
                       f"shape {audio.shape}")
    return self.apply(audio, self.draw(key, audio.shape[:-1]))

  def draw(self, key, batch_shape) -> dict:
    """{kind: {"index": (k,) utterances (flat, row-major) it applies to, params (k, ...)}}."""
    draws = {}
    for name, kind in self.kinds.items():
      group = kind.group(batch_shape)  # consecutive utterances sharing a draw (a speaker's)
      units = math.prod(batch_shape) // group
      count = int(round(kind.options.prob * units))
      if count == 0:
        continue
      # One uniform draw per kind, from a key of its own (switching one kind on or off does
      # not change the others' draws); few random ops, as they dominate compile time.
      u = jax.random.uniform(jax.random.fold_in(key, KINDS.index(name)),
                             (units + count * kind.columns(),))
      chosen = jnp.argsort(u[:units])[:count]  # a random subset
      params = kind.draw(u[units:].reshape(count, -1), batch_shape)
      if group > 1:
        chosen = (chosen[:, None] * group + jnp.arange(group)).reshape(-1)
        params = jax.tree.map(functools.partial(jnp.repeat, repeats=group, axis=0), params)
      draws[name] = {"index": chosen, **params}
    return draws

  def apply(self, audio, draws: dict, lengths=None, babble=None):
    """Apply ``draws`` to audio (..., samples); ``lengths`` (...) valid samples (default all).

    ``babble`` (..., samples): the unscaled babble for each utterance; None makes it from
    the batch itself (``babble_from_batch``; audio must then be (n, m, samples)).
    """
    shape, samples = audio.shape, audio.shape[-1]
    flat = audio.reshape(-1, samples)
    flat_lengths = None if lengths is None else jnp.asarray(lengths).reshape(-1)
    flat_babble = None if babble is None else babble.reshape(-1, samples)
    for name, kind in self.kinds.items():
      if name not in draws:
        continue
      d = draws[name]
      index = d["index"]
      length = None if flat_lengths is None else flat_lengths[index]
      valid = None if length is None else (
          jnp.arange(samples) < length[:, None]).astype(audio.dtype)
      x = kind.apply(flat[index], d, augment_kinds.Drawn(length, valid, audio, flat_babble))
      flat = flat.at[index].set(x, unique_indices=True)
    return flat.reshape(shape)


def default_config() -> dict:
  """``config.augment``'s defaults: every kind's fields, off (prob 0)."""
  return settings.defaults(AugmentOptions)


def config_problems(values) -> list:
  """Every value of ``config.augment`` the augmenter could not use, as ``config.augment...``."""
  found = settings.problems(AugmentOptions, values, "augment")
  return found or settings.build(AugmentOptions, values, "augment").problems()


def make_augmenter(config) -> Augmenter | None:
  """An ``Augmenter`` from ``config.augment`` (dict-like), or None when every kind is off."""
  options = AugmentOptions.from_dict(config)
  return Augmenter(options) if options.enabled() else None

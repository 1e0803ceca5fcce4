"""One up-front check of a training config: every bad value named as ``config.x.y``.

``validate(config)`` raises ``ConfigError`` listing each field the run could not use and
what was expected, before any data is read or anything is written. Unknown fields are
ml_collections' job (the configs are locked, so an override of a field that does not exist
fails at flag parsing; ``experiments.cli`` turns that into one line). A new config field
gets a row in ``FIELDS`` (and, if it depends on other fields, a function in ``RELATIONS``).
"""

import math
import typing

import jax

from data_pipelines.source_specs import parse_sources, parse_weights
from ge2e_jax import features, losses, model, train_step


class ConfigError(ValueError):
  """A config value the run cannot use; the message names ``config.x.y``."""


def _int(low: int, high: float = math.inf):
  return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(positive: bool):
  def check(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (v > 0 or not positive)
  return check


def _one_of(*values):
  return lambda v: v in values


_str = lambda v: isinstance(v, str)
_bool = lambda v: isinstance(v, bool)
_even = lambda v: _int(2)(v) and v % 2 == 0

# field -> (check, what is expected)
FIELDS = {
    "seed": (_int(0, 2**31 - 1), "an integer in [0, 2**31)"),
    "model.cells": (_int(1), "an integer >= 1"),
    "model.projection": (_int(0), "an integer >= 0 (0: LSTM layers without projection)"),
    "model.layers": (_int(1), "an integer >= 1"),
    "model.n_mels": (_int(1), "an integer >= 1"),
    "model.forget_bias": (_number(False), "a finite number"),
    "model.scan_unroll": (_int(1), "an integer >= 1"),
    "model.head": (_int(0), "an integer >= 0 (0: no dense head)"),
    "model.n_fft": (_int(400), "an integer >= 400 (the window)"),
    "model.mel_scale": (_one_of(*features.MEL_SCALES), f"one of {features.MEL_SCALES}"),
    "model.log_mel": (_bool, "True or False"),
    "model.normalize_features": (_bool, "True or False"),
    "model.target_dbfs": (lambda v: v is None or (_number(False)(v) and v < 0),
                          "None or a number < 0 (dB full scale)"),
    "model.window_rule": (_one_of(*model.WINDOW_RULES), f"one of {model.WINDOW_RULES}"),
    "model.partial_rate": (_number(True), "a finite number > 0 (windows per second)"),
    "model.min_coverage": (lambda v: _number(True)(v) and v <= 1, "a number in (0, 1]"),
    "data.data_dir": (_str, "a directory ('' for the TFDS default)"),
    "data.sources": (_str, "'name:tfds_name,...'"),
    "data.weights": (_str, "'name:weight,...' or ''"),
    "data.mode": (_one_of("stacked", "sampled"), "'stacked' or 'sampled'"),
    "data.n_speakers": (_int(2), "an integer >= 2 (speakers per batch)"),
    "data.n_utterances": (_int(2), "an integer >= 2 (utterances per speaker)"),
    "data.crop": (_one_of("td", "ti"), "'td' or 'ti'"),
    "data.storage": (_one_of("memory", "cache"), "'memory' or 'cache'"),
    "data.cache_dir": (_str, "a directory of speaker caches ('' for none)"),
    "loss.name": (_one_of(*train_step.LOSSES), f"one of {train_step.LOSSES}"),
    "loss.centroids": (_one_of(*typing.get_args(losses.Centroids)),
                       f"one of {typing.get_args(losses.Centroids)}"),
    "loss.reduction": (_one_of(*typing.get_args(losses.Reduction)),
                       f"one of {typing.get_args(losses.Reduction)}"),
    "optimizer.kind": (_one_of("sgd", "adam"), "'sgd' or 'adam'"),
    "optimizer.learning_rate": (_number(True), "a finite number > 0"),
    "optimizer.decay_every": (_int(1), "an integer >= 1 (steps)"),
    "optimizer.clip_norm": (_number(True), "a finite number > 0"),
    "optimizer.projection_scale": (_number(True), "a finite number > 0"),
    "optimizer.similarity_scale": (_number(True), "a finite number > 0"),
    "optimizer.schedule": (_one_of("halving", "cosine", "exponential"),
                           "'halving', 'cosine' or 'exponential'"),
    "optimizer.warmup_steps": (_int(0), "an integer >= 0 (steps)"),
    "optimizer.decay_steps": (_int(1), "an integer >= 1 (steps)"),
    "optimizer.final_fraction": (_number(True), "a finite number > 0"),
    "train.num_steps": (_int(1), "an integer >= 1"),
    "train.log_every": (_int(1), "an integer >= 1 (steps)"),
    "train.checkpoint_every": (_int(1), "an integer >= 1 (steps)"),
    "train.keep_last": (_int(1), "an integer >= 1"),
    "train.keep_best": (_int(0), "an integer >= 0"),
    "train.max_nonfinite_streak": (_int(1), "an integer >= 1"),
    "train.encoder_chunks": (_int(1), "an integer >= 1 that divides each device's utterances"),
    "train.allow_fresh_start": (_bool, "True or False"),
    "train.allow_unverified_checkpoint": (_bool, "True or False"),
    "train.allow_batch_change": (_bool, "True or False"),
    "train.init_from": (_str, "a training workdir or export dir to fine-tune from, or ''"),
    "eval.source": (_str, "a source name of config.data.sources"),
    "eval.split": (lambda v: _str(v) and v != "", "a split name, e.g. 'test'"),
    "eval.conditions": (_str, "'[?][tfds_name:]split[+channel]' items, comma-separated, or ''"),
    "eval.every": (_int(0), "an integer >= 0 (steps; 0 = no evaluation)"),
    "eval.enroll": (_int(1), "an integer >= 1"),
    "eval.window_frames": (_even, "an even integer >= 2"),
    "eval.max_utterances_per_speaker": (_int(2), "an integer >= 2"),
}


def _sources(c):
  try:
    sources = parse_sources(c.data.sources)
  except ValueError as err:
    return str(err)
  if c.eval.every and c.eval.source not in sources:
    return f"config.eval.source={c.eval.source!r}: expected one of {sorted(sources)}"
  if not c.data.weights and len(sources) != 1:
    return (f"config.data.sources names {len(sources)} sources: give config.data.weights "
            "('name:alpha,...') to combine them with MultiReader")
  if c.data.weights:
    try:
      parse_weights(c.data.weights, sources)
    except ValueError as err:
      return f"config.data.weights: {err}"
    if c.loss.name == "softmax":
      return "config.loss.name='softmax' trains on one source: set config.data.weights=''"
  return None


def _split_centroids(c):
  if c.loss.centroids == "split" and c.data.n_utterances % 2:
    return (f"config.data.n_utterances={c.data.n_utterances}: split centroids "
            "(config.loss.centroids) need an even number")
  return None


def _devices(c):
  if c.data.n_speakers % jax.device_count():
    return (f"config.data.n_speakers={c.data.n_speakers}: expected a multiple of the "
            f"{jax.device_count()} devices the batch's speakers are split over")
  return None


def _enrolment(c):
  if c.eval.max_utterances_per_speaker <= c.eval.enroll:
    return (f"config.eval.max_utterances_per_speaker={c.eval.max_utterances_per_speaker}: "
            f"expected more than config.eval.enroll={c.eval.enroll} (some must be tested)")
  return None


# Checks of several fields; each runs once every field has passed its own check.
RELATIONS = (_sources, _split_centroids, _devices, _enrolment)


def validate(config):
  """Raises ConfigError naming every field of ``config`` the run could not use."""
  problems = []
  for path, (check, expected) in FIELDS.items():
    node = config
    try:
      for key in path.split("."):
        node = node[key]
    except (KeyError, AttributeError, TypeError):
      problems.append(f"config.{path} is missing")
      continue
    if not check(node):
      problems.append(f"config.{path}={node!r}: expected {expected}")
  if not problems:
    problems = [p for p in (relation(config) for relation in RELATIONS) if p]
  if problems:
    raise ConfigError("; ".join(problems))

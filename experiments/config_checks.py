"""One up-front check of a training config: every bad value named as ``config.x.y``.

``validate(config)`` raises ``ConfigError`` listing each field the run could not use and
what was expected, before any data is read or anything is written. Each field's check is
the one its dataclass declares (``RunConfig``'s sections; ``config.augment``:
``ge2e_jax.augment.config_problems``), and ``experiments/configs/default.py`` takes its
values from the same fields; ``RELATIONS`` holds the checks of fields of several sections.
A new field is a field of its section's dataclass. Unknown fields are ml_collections' job
too (the configs are locked, so an override of a field that does not exist fails at flag
parsing; ``experiments.cli`` turns that into one line).
"""

import dataclasses

import jax

from data_pipelines import source_specs
from data_pipelines.source_specs import DataOptions
from experiments.run_settings import EvalOptions, TrainOptions
from ge2e_jax import augment, settings
from ge2e_jax.model import EncoderConfig, preset
from ge2e_jax.optim import OptimizerConfig
from ge2e_jax.train_step import LossOptions


class ConfigError(ValueError):
  """A config value the run cannot use; the message names ``config.x.y``."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Every section of a training config but ``augment`` (``ge2e_jax.augment``'s)."""
  seed: int = settings.setting(0, settings.integer(0, 2**31 - 1),
                               "seeds the params, the batches and the augmentation")
  model: EncoderConfig = preset("td")
  data: DataOptions = DataOptions()
  loss: LossOptions = LossOptions()
  optimizer: OptimizerConfig = OptimizerConfig()
  train: TrainOptions = TrainOptions()
  eval: EvalOptions = EvalOptions()


def _sources(c):
  sources = source_specs.sources(c["data"])
  if c["eval"]["every"] and c["eval"]["source"] not in sources:
    return f"config.eval.source={c['eval']['source']!r}: expected one of {sorted(sources)}"
  if c["loss"]["name"] == "softmax" and len(sources) != 1:
    return (f"config.loss.name='softmax' trains on one source: config.data.sources names "
            f"{sorted(sources)}")
  return None


def _split_centroids(c):
  if c["loss"]["centroids"] == "split" and c["data"]["n_utterances"] % 2:
    return (f"config.data.n_utterances={c['data']['n_utterances']}: split centroids "
            "(config.loss.centroids) need an even number")
  return None


def _devices(c):
  if c["data"]["n_speakers"] % jax.device_count():
    return (f"config.data.n_speakers={c['data']['n_speakers']}: expected a multiple of the "
            f"{jax.device_count()} devices the batch's speakers are split over")
  return None


# Checks of fields of several sections; each runs once every field has passed its own check.
RELATIONS = (_sources, _split_centroids, _devices)


def validate(config):
  """Raises ConfigError naming every field of ``config`` the run could not use."""
  values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  if "augment" in values:
    problems = augment.config_problems(values.pop("augment"))
  else:
    problems = ["config.augment is missing"]
  problems += settings.problems(RunConfig, values, "", complete=True)
  if not problems:
    problems = [p for p in (relation(values) for relation in RELATIONS) if p]
  if problems:
    raise ConfigError("; ".join(problems))

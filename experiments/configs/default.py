"""Fields every run has; td.py, ti.py, ... start from here and change what differs.

Every value is the default of its field in ``config_checks.RunConfig`` (the library's option
dataclasses and the trainer's; each field's help text is there) and ``config.augment`` is
``ge2e_jax.augment``'s. Override any field from the command line:
--config.train.num_steps=1000, --config.data.sources.ok.corpus=speaker_folders/mine.
"""

import ml_collections

from experiments import config_checks
from ge2e_jax import augment, settings


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(settings.defaults(config_checks.RunConfig))
  c.augment = augment.default_config()
  return c

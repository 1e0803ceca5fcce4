"""MultiReader (Wan et al. 2018, §2.3): a small "hey computer" target helped by "ok computer"."""

from data_pipelines import source_specs
from experiments.configs import default


def get_config():
  c = default.get_config()
  c.data.sources = {"hey": source_specs.source("synthetic_voices/td_hey_computer", 1.0),
                    "ok": source_specs.source("synthetic_voices/td_ok_computer", 0.5)}
  c.data.mode = "stacked"
  c.eval.source = "hey"
  return c

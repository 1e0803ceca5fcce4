"""TI-SV, the paper's setting: 768 cells / projection 256, crops of [140, 180] frames."""

from data_pipelines import source_specs
from experiments.configs import default, td
from ge2e_jax import model


def get_config():
  c = default.get_config()
  c.model = model.config_to_dict(model.preset("ti"))
  c.data.sources = {"ti": source_specs.source("synthetic_voices/ti")}
  c.data.crop = "ti"
  c.eval.source = "ti"
  c.eval.window_frames = 160
  c.eval.conditions = td.RECORDED_CONDITIONS
  return c

"""TD-SV, the paper's setting: 128 cells / projection 64, 64 x 10 batches of 80 frames."""

from experiments.configs import default


def get_config():
  return default.get_config()

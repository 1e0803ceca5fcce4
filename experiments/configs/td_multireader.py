"""MultiReader (Wan et al. 2018, §2.3): a small "hey computer" target helped by "ok computer"."""

from experiments.configs import default


def get_config():
  c = default.get_config()
  c.data.sources = "hey:synthetic_voices/td_hey_computer,ok:synthetic_voices/td_ok_computer"
  c.data.weights = "hey:1.0,ok:0.5"
  c.data.mode = "stacked"
  c.eval.source = "hey"
  return c

"""`make demo-pretrained`: td_demo's phrase, corpus and augmentation, fine-tuned from the
imported Resemblyzer encoder (`make pretrained` -> runs/pretrained/resemblyzer).

The encoder fields (architecture, frontend, volume, partial windows) are the imported
model's (``model.RESEMBLYZER``) and evaluation uses its 160-frame windows: the trainer
checks both against the source's config.json (``experiments/finetune.py``). Adam at a tenth
of td_demo's learning rate, so the first steps do not undo what the source learnt, and a
third of td_demo's 600 steps (warm-up and cosine decay over them): trained longer, the
fine-tune over-fitted the 120 training voices (RESULTS.md, "Pretrained encoders").
"""

from experiments.configs import td_demo
from ge2e_jax import model

SOURCE = "runs/pretrained/resemblyzer"


def from_import(c):
  """``c`` fine-tuning the imported encoder: its architecture and window, 200 steps at 1e-4."""
  c.model = model.config_to_dict(model.RESEMBLYZER)
  c.train.init_from = SOURCE
  c.eval.window_frames = 160
  c.optimizer.learning_rate = 1e-4
  c.optimizer.warmup_steps = 20
  c.optimizer.decay_steps = 200
  c.train.num_steps = 200
  c.train.checkpoint_every = 100
  c.eval.every = 100
  return c


def get_config():
  c = from_import(td_demo.get_config())
  c.train.log_every = 25
  return c

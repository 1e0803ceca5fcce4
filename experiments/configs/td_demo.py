"""`make demo`: the td model on the embedded synthetic corpus, a few minutes on 2 CPU cores.

td.py's model, augmentation and held-out conditions; 16 x 6 batches and 600 steps.
"""

from experiments.configs import td


def get_config():
  c = td.get_config()
  c.data.data_dir = "runs/tfds"
  c.data.n_speakers = 16
  c.data.n_utterances = 6
  c.train.num_steps = 600
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  c.eval.every = 200
  return c

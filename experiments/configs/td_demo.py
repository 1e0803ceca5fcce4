"""`make demo`: the td model on the embedded synthetic corpus, a few minutes on 2 CPU cores.

td.py's model, augmentation and held-out conditions; 16 x 6 batches, 600 steps, and Adam
(lr 1e-3, 50 warm-up steps, cosine decay to 5 % at step 600) instead of td.py's paper SGD,
which it beat on noisy voices of unseen language families (RESULTS.md §0, "Optimiser").
"""

from experiments.configs import td


def get_config():
  c = td.get_config()
  c.data.data_dir = "runs/tfds"
  c.data.n_speakers = 16
  c.data.n_utterances = 6
  c.optimizer.kind = "adam"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.warmup_steps = 50
  c.optimizer.decay_steps = 600
  c.optimizer.final_fraction = 0.05
  c.eval.conditions = f"{td.SYNTHETIC_CONDITIONS},{td.RECORDED_IF_PREPARED}"  # runs without them
  c.train.num_steps = 600
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  c.eval.every = 200
  return c

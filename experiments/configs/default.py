"""Fields every run has; td.py, ti.py, ... start from here and change what differs.

Override any field from the command line: --config.train.num_steps=1000.
"""

import ml_collections

from ge2e_jax import model


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = model.config_to_dict(model.preset("td"))

  c.data = ml_collections.ConfigDict()
  c.data.data_dir = ""                      # TFDS data_dir; "" = TFDS default (~/tensorflow_datasets)
  # Sources as "name:tfds_name,name:tfds_name"; one source = plain GE2E batches.
  c.data.sources = "ok:synthetic_voices/td_ok_computer"
  c.data.weights = ""                       # MultiReader "name:alpha,..."; "" = one source
  c.data.mode = "stacked"                   # MultiReader: "stacked" (paper) or "sampled"
  c.data.n_speakers = 64
  c.data.n_utterances = 10
  c.data.crop = "td"                        # "td" (80 frames) or "ti" ([140, 180] per batch)
  # Where the training audio lives: "memory" (each host's speaker shard in RAM) or "cache"
  # (read per batch from a speaker cache on disk; RAM holds its index only). cache_dir: the
  # caches built by `python -m data_pipelines.build_cache`; with "memory" it makes start-up
  # read only the host's shard instead of the whole TFDS split.
  c.data.storage = "memory"
  c.data.cache_dir = ""

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "ge2e_softmax"              # ge2e_softmax | ge2e_contrast | te2e | softmax
  c.loss.centroids = "exclusive"            # exclusive | inclusive | split
  c.loss.reduction = "sum"                  # the optimiser sees the sum (the paper's L_G)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.kind = "sgd"
  c.optimizer.learning_rate = 0.01
  c.optimizer.decay_every = 30_000_000
  c.optimizer.clip_norm = 3.0
  c.optimizer.projection_scale = 0.5
  c.optimizer.similarity_scale = 0.01

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 100_000
  c.train.log_every = 50
  c.train.checkpoint_every = 1000
  c.train.keep_last = 3
  c.train.keep_best = 1
  c.train.max_nonfinite_streak = 10         # stop after this many non-finite steps in a row

  c.eval = ml_collections.ConfigDict()
  c.eval.source = "ok"                      # held-out speakers of this source's "test" split
  c.eval.split = "test"
  c.eval.every = 1000
  c.eval.enroll = 3                         # enrolment utterances per speaker
  c.eval.window_frames = 80                 # sliding d-vector windows (SPEC.md §4: 160 for TI)
  c.eval.max_utterances_per_speaker = 20
  return c

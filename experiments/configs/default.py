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

  # Per-utterance augmentation on device in the train step (ge2e_jax/augment.py), never in
  # evaluation. Each kind: prob = fraction of the utterances it is applied to (0 = off).
  c.augment = ml_collections.ConfigDict({
      "speed": {"prob": 0.0, "factor": (0.9, 1.1), "interpolation": "linear", "half_taps": 8},
      "reverb": {"prob": 0.0, "rt60_s": (0.2, 0.8), "drr_db": (-3.0, 10.0), "rir_seconds": 0.5,
                 "bank_size": 128, "image_method": 0.0, "bank_seed": 0},
      "babble": {"prob": 0.0, "snr_db": (10.0, 20.0), "speakers": (1, 3)},
      "noise": {"prob": 0.0, "snr_db": (5.0, 20.0), "colors": "white,pink,brown",
                "bank_seconds": 30.0, "bank_seed": 0},
      "channel": {"prob": 0.0, "low_hz": (200.0, 400.0), "high_hz": (3000.0, 3800.0),
                  "taps": 255, "mu_law_prob": 0.5},
      "gain": {"prob": 0.0, "db": (-6.0, 6.0)},
  })

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
  # "halving" (the paper: lr halved every decay_every steps), or warm-up then "cosine" /
  # "exponential" decay to final_fraction * learning_rate at decay_steps (ge2e_jax/optim.py).
  c.optimizer.schedule = "halving"
  c.optimizer.warmup_steps = 0
  c.optimizer.decay_steps = 100_000
  c.optimizer.final_fraction = 0.01

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 100_000
  c.train.log_every = 50
  c.train.checkpoint_every = 1000
  c.train.keep_last = 3
  c.train.keep_best = 1
  c.train.max_nonfinite_streak = 10         # stop after this many non-finite steps in a row
  # > 1: the encoder's backward pass over this many chunks of each device's utterances in
  # turn: activation memory / chunks for one more forward pass (ge2e_jax/train_step.py; td
  # 64 x 10 on CPU, 4 chunks: 0.76 -> 0.20 GB of step buffers, BENCHMARKS.md).
  c.train.encoder_chunks = 1
  c.train.init_from = ""                    # fine-tune: a workdir or export dir to start from
  c.train.allow_fresh_start = False         # train from 0 when no checkpoint is usable
  c.train.allow_unverified_checkpoint = False  # resume from a step without checksums
  c.train.allow_batch_change = False        # resume with another data.n_speakers/n_utterances/crop

  c.eval = ml_collections.ConfigDict()
  c.eval.source = "ok"                      # held-out speakers of this source's "test" split
  c.eval.split = "test"
  # More held-out conditions, scored at every evaluation beside eval.split (which alone picks
  # the best checkpoint): "[?][tfds_name:]split[+channel]", comma-separated; the split is the
  # evaluation corpus's unless another prepared corpus is named; a channel is an
  # experiments.conditions.apply_condition spec, e.g. "test_unseen_lang,test+noise_snr5..15,test+reverb";
  # "?" = scored only where that corpus is prepared.
  c.eval.conditions = ""
  c.eval.every = 1000
  c.eval.enroll = 3                         # enrolment utterances per speaker
  c.eval.window_frames = 80                 # sliding d-vector windows (160 for TI, paper §3.2)
  c.eval.max_utterances_per_speaker = 20
  return c

"""`make demo`: the td model on the embedded synthetic corpus, a few minutes on 2 CPU cores.

Trained with augmentation (noise, reverberation, babble, channel, gain) and evaluated beside
its clean test split on voices of language families it never heard, clean and in noise: on
the first such run (RESULTS.md) augmentation halved the noisy unseen-family EER.
"""

from experiments.configs import default


def get_config():
  c = default.get_config()
  c.data.data_dir = "runs/tfds"
  c.data.n_speakers = 16
  c.data.n_utterances = 6
  c.augment.noise.prob = 0.5
  c.augment.noise.snr_db = (0.0, 20.0)
  c.augment.reverb.prob = 0.3
  c.augment.babble.prob = 0.2
  c.augment.channel.prob = 0.2
  c.augment.gain.prob = 0.3
  c.train.num_steps = 600
  c.train.log_every = 50
  c.train.checkpoint_every = 200
  c.eval.every = 200
  c.eval.conditions = "test_unseen_lang,test_unseen_lang+noise_snr5..15"
  return c

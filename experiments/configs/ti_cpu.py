"""TI-SV small enough to train usefully on 2 CPU cores: 3 x LSTMP 256 / projection 128.

The paper's crops ([140, 180] frames) and 160-frame evaluation windows; 16 speakers x 6
utterances per batch, augmentation as in td.py, and held-out voices of unseen language
families, clean and in noise, at every evaluation. `ti` stays the paper's 768 / 256 model
for accelerators.

Adam (lr 1e-3, 100 warm-up steps, cosine decay to 5 % at step 3000) instead of the paper's
SGD, which it beat on the unseen-family conditions with the same steps, seed and
augmentation (RESULTS.md, "ti_cpu").

No per-utterance feature normalisation: it removes each utterance's long-term log-mel
spectrum, a large part of what tells voices apart (RESULTS.md, "Feature normalisation").

  python -m data_pipelines.builders.tfds_build data_pipelines/builders/synthetic_voices.py \
      --config=ti --data_dir=runs/tfds
  python -m experiments.train --config=experiments/configs/ti_cpu.py --workdir=runs/ti_cpu
"""

from data_pipelines import source_specs
from experiments.configs import td, td_demo
from ge2e_jax import model


# An engine never in train, voices made from real speakers' diphones (`make voices`, then
# tfds_build ... synthetic_voices.py --config=ti_mbrola), clean and in noise: scored where
# it is built (td.if_prepared).
MBROLA_CONDITIONS = ("synthetic_voices/ti_mbrola:test_mbrola,"
                     "synthetic_voices/ti_mbrola:test_mbrola+noise_snr5..15")


def get_config():
  c = td_demo.get_config()  # corpus dir, batch, augmentation, Adam, held-out conditions
  c.model = model.config_to_dict(model.preset("ti", cells=256, projection=128,
                                              normalize_features=False))
  c.data.sources = {"ti": source_specs.source("synthetic_voices/ti")}
  c.data.crop = "ti"
  c.eval.source = "ti"
  c.eval.window_frames = 160
  c.eval.conditions = (f"{td.SYNTHETIC_CONDITIONS},{td.RECORDED_CONDITIONS},"
                       f"{td.if_prepared(MBROLA_CONDITIONS)}")
  c.optimizer.warmup_steps = 100  # td_demo's Adam, warmed up and decayed over 3000 steps
  c.optimizer.decay_steps = 3000
  c.train.num_steps = 3000  # how long that takes on 2 CPU cores: RESULTS.md, "ti_cpu"
  c.train.log_every = 100
  c.train.checkpoint_every = 300
  c.eval.every = 300
  return c

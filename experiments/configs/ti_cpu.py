"""TI-SV small enough to train usefully on 2 CPU cores: 3 x LSTMP 256 / projection 128.

The paper's crops ([140, 180] frames) and 160-frame evaluation windows; 16 speakers x 6
utterances per batch, augmentation as in td.py, and held-out voices of unseen language
families, clean and in noise, at every evaluation. `ti` stays the paper's 768 / 256 model
for accelerators.

Adam (lr 1e-3, 100 warm-up steps, cosine decay to 5 % at step 3000) instead of the paper's
SGD: with the same 3000 steps, seed and augmentation it was ahead on the unseen-family
conditions at every evaluation from step 1800 and ended at 6.4 % (clean) and 6.3 % (noisy)
EER on them where SGD ended at 8.1 % and 7.5 % (RESULTS.md, "ti_cpu").

  python -m data_pipelines.builders.tfds_build data_pipelines/builders/synthetic_voices.py \
      --config=ti --data_dir=runs/tfds
  python -m experiments.train --config=experiments/configs/ti_cpu.py --workdir=runs/ti_cpu
"""

from experiments.configs import td, td_demo
from ge2e_jax import model


def get_config():
  c = td_demo.get_config()  # corpus dir, batch, augmentation, Adam, held-out conditions
  c.model = model.config_to_dict(model.preset("ti", cells=256, projection=128))
  c.data.sources = "ti:synthetic_voices/ti"
  c.data.crop = "ti"
  c.eval.source = "ti"
  c.eval.window_frames = 160
  c.eval.conditions = f"{td.SYNTHETIC_CONDITIONS},{td.RECORDED_CONDITIONS}"
  c.optimizer.warmup_steps = 100  # td_demo's Adam, warmed up and decayed over 3000 steps
  c.optimizer.decay_steps = 3000
  c.train.num_steps = 3000  # ~0.6 s a step on the 2-core VM: about 30 minutes
  c.train.log_every = 100
  c.train.checkpoint_every = 300
  c.eval.every = 300
  return c

"""ti_cpu on real and synthetic speech: MultiReader (Wan et al. 2018, §2.3) of the recorded
human voices (recorded_voices:train, 16 speakers) and the procedural espeak-ng voices
(synthetic_voices/ti:train, 120 speakers).

Every MultiReader source shares the batch N x M, and the recorded corpus has only 16
training speakers (10 before its version 2.0.0), so each step carries one 8 x 6 batch of
each (96 utterances, as ti_cpu's 16 x 6). Two readers make a step slower than ti_cpu's, so
1600 steps (the schedule decayed over them) keep training within ti_cpu's half hour on 2
CPU cores (RESULTS.md, "Recorded human voices: the real + synthetic sweep"). The recorded
corpus's weight is what experiments/ablate_real.py sweeps; held-out: ti_cpu's conditions
(synthetic unseen families, real speakers clean, noisy, reverberant; MBROLA where built).

  make recorded-voices
  python -m data_pipelines.builders.tfds_build data_pipelines/builders/synthetic_voices.py \
      --config=ti --data_dir=runs/tfds
  python -m experiments.train --config=experiments/configs/ti_cpu_real.py \
      --workdir=runs/ti_cpu_real
"""

from data_pipelines import source_specs
from experiments.configs import ti_cpu

RECORDED_WEIGHT = 0.25  # MultiReader weight of recorded_voices beside synthetic_voices/ti's 1.0


def get_config():
  c = ti_cpu.get_config()
  c.data.sources = {"ti": source_specs.source("synthetic_voices/ti", 1.0),
                    "real": source_specs.source("recorded_voices", RECORDED_WEIGHT)}
  c.data.mode = "stacked"
  c.data.n_speakers = 8
  c.train.num_steps = c.optimizer.decay_steps = 1600
  c.train.checkpoint_every = c.eval.every = 400
  return c

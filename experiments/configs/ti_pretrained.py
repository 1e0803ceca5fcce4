"""TI-SV fine-tuned from the imported Resemblyzer encoder (`make pretrained`): ti_cpu's corpus,
crops, batch, augmentation and held-out conditions, the import's encoder.

As td_pretrained does for td_demo: the encoder fields are the imported model's
(``model.RESEMBLYZER``, checked against the source's config.json by experiments/finetune.py)
and Adam at a tenth of ti_cpu's rate. A short budget (200 of ti_cpu's 3000 steps, warmed
up and decayed over it): the source already separates speakers, and on the TD phrase longer
fine-tuning over-fitted the 120 training voices (RESULTS.md, "Pretrained encoders").

  python -m experiments.train --config=experiments/configs/ti_pretrained.py --workdir=runs/ti_pretrained
"""

from experiments.configs import ti_cpu
from experiments.configs import td_pretrained


def get_config():
  c = td_pretrained.from_import(ti_cpu.get_config())  # ti_cpu's window is 160 frames too
  c.train.log_every = 50
  return c

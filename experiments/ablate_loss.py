"""Loss ablation (Wan et al. 2018, §3): GE2E-softmax, GE2E-contrast, TE2E and the softmax baseline.

Every loss trains from the same base config -- data, batch N x M, model, optimiser, seed
and step budget -- in its own workdir ``<workdir>/<loss>``, evaluated every
``--eval_every`` steps on the held-out speakers. Prints and writes
``<workdir>/loss_ablation.{md,png,json}``: EER and minDCF against steps and training
seconds. Rerun the same command after an interruption: finished arms are reused and an
unfinished one resumes from its last checkpoint.

  python -m experiments.ablate_loss --steps=400 --eval_every=50 --workdir=runs/ablations/loss
"""

import os

from absl import app, flags

from experiments import ablation_common, cli
from ge2e_jax import train_step

FLAGS = flags.FLAGS
ablation_common.define_flags(
    __name__, "td_demo.py", "Base config; every arm changes only loss.name, train.num_steps and "
    "eval.every.", steps=600, eval_every=100, workdir="runs/ablations/loss")
flags.DEFINE_list("losses", ["ge2e_softmax", "ge2e_contrast", "te2e", "softmax"],
                  "Losses to compare (ge2e_jax.train_step.LOSSES).")


def arm_config(base, loss: str, steps: int, eval_every: int):
  config = ablation_common.budgeted(base, steps, eval_every)
  config.loss.name = loss
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = [loss for loss in FLAGS.losses if loss not in train_step.LOSSES]
  if unknown or not FLAGS.losses:
    raise app.UsageError(f"--losses: {unknown or 'empty'}; expected some of {train_step.LOSSES}")
  histories = {}
  for loss in FLAGS.losses:
    try:
      config = arm_config(FLAGS.config, loss, FLAGS.steps, FLAGS.eval_every)
    except ValueError as err:
      raise app.UsageError(str(err)) from None
    histories[loss] = ablation_common.run_arm(config, os.path.join(FLAGS.workdir, loss))
  base = arm_config(FLAGS.config, FLAGS.losses[0], FLAGS.steps, FLAGS.eval_every).to_dict()
  tables = ablation_common.write_outputs(
      FLAGS.workdir, "loss_ablation", f"Loss ablation: {base['data']['sources']}", base,
      FLAGS.steps, histories, {"losses": FLAGS.losses})
  print(tables)


if __name__ == "__main__":
  cli.run(main, "ablate_loss")

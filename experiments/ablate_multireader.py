"""MultiReader ablation (Wan et al. 2018, §2.3): a small target helped by a large auxiliary.

Three arms, same base config, seed, step budget and batch N x M, all evaluated on the
TARGET source's held-out test speakers (``<workdir>/<arm>``):
  target_only  the target's train split alone ("hey computer", few speakers).
  pooled       naive mixing: one source whose train split is the union of the target's and
               the auxiliary's train utterances (``--pooled``, built as such); one speaker
               pool, one similarity matrix per batch. The synthetic corpora share voice ids
               across phrases, so a voice in both corpora is ONE speaker holding both phrases.
               Its test split must equal the target's (checked).
  multireader  MultiReader stacked (the paper): each step one N x M target batch and one
               N x M auxiliary batch, loss target_weight * L_target + aux_weight * L_aux.
               Twice the utterances per step of the other arms: compare by training seconds too.
Before training it checks, from the prepared corpora, that no evaluation speaker is in any
arm's training data, that pooled/test is target/test, and that pooled/train holds exactly the
audio of target/train plus aux/train. Prints and writes ``<workdir>/multireader_ablation.*``.

  python -m experiments.ablate_multireader --steps=400 --eval_every=50 \
      --workdir=runs/ablations/multireader
"""

import os

from absl import app, flags, logging

from data_pipelines import source_specs
from experiments import ablation_common, cli

ARMS = ("target_only", "pooled", "multireader")
FLAGS = flags.FLAGS
ablation_common.define_flags(
    __name__, "td_demo.py",
    "Base config (model, batch, optimiser, seed, data_dir); its data.sources is replaced.",
    steps=600, eval_every=100, workdir="runs/ablations/multireader")
flags.DEFINE_string("target", "synthetic_voices/td_hey_computer_16", "Target TFDS name.")
flags.DEFINE_string("aux", "synthetic_voices/td_ok_computer", "Auxiliary TFDS name.")
flags.DEFINE_string("pooled", "synthetic_voices/td_hey_computer_16_pooled_ok",
                    "TFDS name whose train split is target/train + aux/train, test target/test.")
flags.DEFINE_float("target_weight", 1.0, "MultiReader weight of the target source.")
flags.DEFINE_float("aux_weight", 0.5, "MultiReader weight of the auxiliary source.")
flags.DEFINE_list("arms", list(ARMS), f"Arms to run, some of {ARMS}.")


def arm_config(base, arm: str, steps: int, eval_every: int, *, target: str, aux: str,
               pooled: str, target_weight: float, aux_weight: float):
  """``base`` with the sources, weights and eval source of ``arm`` (one of ARMS)."""
  config = ablation_common.budgeted(base, steps, eval_every)
  if arm == "target_only":
    config.data.sources, config.eval.source = {"target": source_specs.source(target)}, "target"
  elif arm == "pooled":
    config.data.sources, config.eval.source = {"pooled": source_specs.source(pooled)}, "pooled"
  else:
    config.data.sources = {"target": source_specs.source(target, target_weight),
                           "aux": source_specs.source(aux, aux_weight)}
    config.data.mode = "stacked"
    config.eval.source = "target"
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  bad = [arm for arm in FLAGS.arms if arm not in ARMS]
  if bad or not FLAGS.arms:
    raise app.UsageError(f"--arms: {bad or 'empty'}; expected some of {ARMS}")
  try:
    ablation_common.budgeted(FLAGS.config, FLAGS.steps, FLAGS.eval_every)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  facts = ablation_common.check_pooled_corpora(FLAGS.target, FLAGS.aux, FLAGS.pooled,
                                               FLAGS.config.data.data_dir or None)
  logging.info("corpora checked: %s", facts)
  corpora = dict(target=FLAGS.target, aux=FLAGS.aux, pooled=FLAGS.pooled,
                 target_weight=FLAGS.target_weight, aux_weight=FLAGS.aux_weight)
  configs = {arm: arm_config(FLAGS.config, arm, FLAGS.steps, FLAGS.eval_every, **corpora)
             for arm in FLAGS.arms}
  histories = {arm: ablation_common.run_arm(config, os.path.join(FLAGS.workdir, arm))
               for arm, config in configs.items()}
  base = FLAGS.config.to_dict()
  tables = ablation_common.write_outputs(
      FLAGS.workdir, "multireader_ablation",
      f"MultiReader ablation: target {FLAGS.target}, aux {FLAGS.aux} "
      f"(weights {FLAGS.target_weight}:{FLAGS.aux_weight})", base, FLAGS.steps, histories,
      {"corpora": facts,
       "arm_sources": {arm: config.data.to_dict() for arm, config in configs.items()}})
  print(f"Corpora: {facts}\n\n{tables}")


if __name__ == "__main__":
  cli.run(main, "ablate_multireader")

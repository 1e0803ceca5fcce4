"""Augmentation ablation: every kind on and off, on procedural and on stock-variant speakers.

For each speaker corpus in ``--speakers`` (``procedural``: the base config's training corpus;
``stock``: its ``*_stock`` twin, espeak-ng's stock variants of English voices) the arms are
  all         the base config's augmentation
  none        every kind off
  no_<kind>   that kind off, the others as in the base (each kind the base turns on)
Same seed, model, batch, optimiser and steps; one workdir per arm, ``<workdir>/<speakers>-<arm>``.
Every arm is scored on the same trials: ``--conditions`` are splits of the procedural
corpus (named with its TFDS name, so a stock-trained arm is scored on them too), clean and
through noise, reverberation or a telephone channel. Prints and writes
``<workdir>/augment_ablation.{md,png,json}``; rerun after an interruption to resume.

  python -m experiments.ablate_augment --steps=600 --eval_every=200 \
      --workdir=runs/ablations/augment
"""

import os

from absl import app, flags

from data_pipelines import source_specs
from experiments import ablation_common, cli

SPEAKERS = ("procedural", "stock")
FLAGS = flags.FLAGS
ablation_common.define_flags(
    __name__, "td_demo.py", "Base config (one data source); the arms change its augment.*.prob, "
    "data.sources, eval.conditions, train.num_steps and eval.every.",
    steps=600, eval_every=200, workdir="runs/ablations/augment")
flags.DEFINE_list("speakers", list(SPEAKERS), f"Training corpora, some of {SPEAKERS}.")
flags.DEFINE_list("arms", [], "Arms to run (all, none, no_<kind>); empty = every arm.")
flags.DEFINE_list("conditions", ["test", "test_unseen_lang", "test_unseen_lang+noise_snr5..15",
                                 "test_unseen_lang+reverb", "test+telephone",
                                 "?recorded_voices:test", "?recorded_voices:test+noise_snr5..15"],
                  "Held-out [split][+channel] conditions of the procedural corpus, or of a "
                  "named corpus ([?]tfds_name:split[+channel], e.g. the real speakers).")


def arms(base) -> list[str]:
  """all, none and no_<kind> for every kind the base config turns on."""
  return ["all", "none"] + [f"no_{kind}" for kind, options in base.augment.items()
                            if options.prob > 0]


def arm_config(base, speakers: str, arm: str, conditions, steps: int, eval_every: int):
  """The base with arm's augmentation, trained on ``speakers``' corpus, scored on the
  procedural corpus's ``conditions``."""
  config = ablation_common.budgeted(base, steps, eval_every)
  sources = source_specs.sources(config.data)
  if len(sources) != 1:
    raise ValueError(f"--config.data.sources: the augmentation ablation trains on one source, "
                     f"got {sorted(sources)}")
  (name, spec), = sources.items()
  corpus = spec.corpus
  if speakers == "stock":
    config.data.sources[name].corpus = f"{corpus}_stock"
  elif speakers != "procedural":
    raise ValueError(f"--speakers: {speakers!r} is not one of {SPEAKERS}")
  for kind, options in config.augment.items():
    if arm == "none" or arm == f"no_{kind}":
      options.prob = 0.0
  if arm not in arms(base):
    raise ValueError(f"--arms: {arm!r} is not one of {arms(base)}")
  config.eval.conditions = ",".join(
      c if ":" in c.partition("+")[0] else f"{corpus}:{c}" for c in conditions)
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  histories = {}
  for speakers in FLAGS.speakers:
    for arm in FLAGS.arms or arms(FLAGS.config):
      try:
        config = arm_config(FLAGS.config, speakers, arm, FLAGS.conditions, FLAGS.steps,
                            FLAGS.eval_every)
      except ValueError as err:
        raise app.UsageError(str(err)) from None
      name = f"{speakers}-{arm}"
      histories[name] = ablation_common.run_arm(config, os.path.join(FLAGS.workdir, name))
  base = FLAGS.config.to_dict()
  tables = ablation_common.write_outputs(
      FLAGS.workdir, "augment_ablation",
      f"Augmentation ablation: {base['data']['sources']} (procedural) vs its _stock twin", base,
      FLAGS.steps, histories, {"conditions": FLAGS.conditions})
  print(tables)


if __name__ == "__main__":
  cli.run(main, "ablate_augment")

"""Real + synthetic speech (recorded human voices): does MultiReader help here?

Arms, same base config (ti_cpu_real.py:sweep: model, N x M per source, optimiser), steps and
seeds:
  synthetic      synthetic_voices/ti:train alone
  recorded       recorded_voices:train alone (16 speakers: N must be <= 16)
  pooled         naive pooling: one speaker pool of both train splits (corpus "a+b")
  multireader_w<w>
                 MultiReader stacked: per step one N x M batch of each, loss
                 L_synthetic + w * L_recorded, for every w in --weights (twice the utterances
                 per step of the single-source arms: compare by training seconds too)
Every arm is scored on the same conditions, named by corpus so the recorded-only arm is
scored on them too: the synthetic corpus's unseen language families (clean, noisy), the
real speakers of recorded_voices:test (clean, noisy, reverberant) and, where `make voices`
and synthetic_voices/ti_mbrola are built, an unseen engine (MBROLA's English voices, clean
and noisy). Each condition's EER interval (eer_ci95, a bootstrap over speakers) is in every
arm's eval_history.jsonl.
One workdir per arm and seed, ``<workdir>/s<seed>/<arm>``; rerun to resume. Prints and
writes ``<workdir>/s<seed>/real_ablation.{md,png,json}`` and, over the seeds,
``<workdir>/real_ablation_mean.md``.

  python -m experiments.ablate_real --seeds=0,1 --workdir=runs/ablations/real
"""

import json
import os

from absl import app, flags, logging
import numpy as np

from data_pipelines import source_specs
from experiments import ablation_common, held_out
from experiments.configs import td, ti_cpu

SYNTHETIC, RECORDED = "synthetic_voices/ti", "recorded_voices"
FIXED_ARMS = ("synthetic", "recorded", "pooled")
CONDITIONS = (*(f"{SYNTHETIC}:{c}" for c in td.SYNTHETIC_CONDITIONS.split(",")),
              *td.RECORDED_CONDITIONS.split(","),
              *td.if_prepared(ti_cpu.MBROLA_CONDITIONS).split(","))
FLAGS = flags.FLAGS
ablation_common.define_flags(
    __name__, "ti_cpu_real.py:sweep", "Base config (model, batch, optimiser, data_dir); the "
    "arms replace data.sources, eval.source, eval.conditions, seed, train.num_steps and "
    "eval.every.",
    steps=1600, eval_every=400, workdir="runs/ablations/real")
flags.DEFINE_list("weights", ["0.25", "1.0", "4.0"],
                  "MultiReader weights of the recorded corpus (synthetic: 1.0).")
flags.DEFINE_list("seeds", ["0", "1"], "Seeds; every arm runs once per seed.")
flags.DEFINE_list("arms", [], "Arms to run (synthetic, recorded, pooled, multireader_w<w>); "
                  "empty = all.")


def all_arms(weights) -> list[str]:
  return list(FIXED_ARMS) + [f"multireader_w{w}" for w in weights]


def arm_config(base, arm: str, seed: int, steps: int, eval_every: int):
  """``base`` with the sources, weights, evaluation source and seed of ``arm``."""
  config = ablation_common.budgeted(base, steps, eval_every)
  config.seed = seed
  if arm == "synthetic":
    config.data.sources, config.eval.source = {"ti": source_specs.source(SYNTHETIC)}, "ti"
  elif arm == "recorded":
    config.data.sources, config.eval.source = {"real": source_specs.source(RECORDED)}, "real"
  elif arm == "pooled":
    config.data.sources = {"pool": source_specs.source(f"{SYNTHETIC}+{RECORDED}")}
    config.eval.source = "pool"
  elif arm.startswith("multireader_w"):
    weight = float(arm.removeprefix("multireader_w"))
    config.data.sources = {"ti": source_specs.source(SYNTHETIC, 1.0),
                           "real": source_specs.source(RECORDED, weight)}
    config.data.mode = "stacked"
    config.eval.source = "ti"
  else:
    raise ValueError(f"--arms: {arm!r} is not one of synthetic, recorded, pooled, "
                     "multireader_w<weight>")
  config.eval.conditions = ",".join(CONDITIONS)
  return config


def check_speakers_held_out(data_dir) -> dict:
  """Raises if a recorded or synthetic test speaker is in either train split."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TensorFlow
  speakers = {(name, split): {ex["speaker"] for ex in corpus.open_split(
      name, split, data_dir, with_audio=False).as_numpy_iterator()}
              for name in (SYNTHETIC, RECORDED) for split in ("train", "test")}
  trained = speakers[SYNTHETIC, "train"] | speakers[RECORDED, "train"]
  for name in (SYNTHETIC, RECORDED):
    leaked = speakers[name, "test"] & trained
    if leaked:
      raise ValueError(f"{len(leaked)} speakers of {name}:test are in a train split "
                       f"(e.g. {sorted(leaked)[:3]})")
  return {f"{name}:{split}_speakers": len(found) for (name, split), found in speakers.items()}


def mean_table(per_seed: dict[int, dict[str, list[dict]]]) -> str:
  """Final EER per arm and condition: mean over seeds (min-max)."""
  arms = list(next(iter(per_seed.values())))
  scored = [c.name for c in held_out.parse_conditions(",".join(CONDITIONS))]
  rows = ["| arm | " + " | ".join(scored) + " |", "|---|" + "---:|" * len(scored)]
  for arm in arms:
    cells = []
    for condition in scored:
      eers = [100 * h[arm][-1]["conditions"][condition]["eer"] for h in per_seed.values()
              if arm in h and h[arm] and condition in h[arm][-1]["conditions"]]
      cells.append(f"{np.mean(eers):.2f}% ({min(eers):.2f}-{max(eers):.2f})" if eers else "-")
    rows.append(f"| {arm} | " + " | ".join(cells) + " |")
  return (f"Final EER, mean over seeds {sorted(per_seed)} (min-max):\n\n" + "\n".join(rows)
          + "\n")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  arms = FLAGS.arms or all_arms(FLAGS.weights)
  try:
    seeds = [int(s) for s in FLAGS.seeds]
    configs = {seed: {arm: arm_config(FLAGS.config, arm, seed, FLAGS.steps, FLAGS.eval_every)
                      for arm in arms} for seed in seeds}
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  facts = check_speakers_held_out(FLAGS.config.data.data_dir or None)
  logging.info("speakers held out: %s", facts)
  per_seed = {}
  for seed in seeds:
    root = os.path.join(FLAGS.workdir, f"s{seed}")
    per_seed[seed] = {arm: ablation_common.run_arm(config, os.path.join(root, arm))
                      for arm, config in configs[seed].items()}
    base = configs[seed][arms[0]].to_dict()
    tables = ablation_common.write_outputs(
        root, "real_ablation", f"Real + synthetic speech, seed {seed}", base, FLAGS.steps,
        per_seed[seed], {"speakers": facts, "arm_data": {
            arm: config.data.to_dict() for arm, config in configs[seed].items()}})
    print(tables)
  summary = mean_table(per_seed)
  with open(os.path.join(FLAGS.workdir, "real_ablation_mean.md"), "w") as f:
    f.write(summary)
  with open(os.path.join(FLAGS.workdir, "real_ablation_facts.json"), "w") as f:
    json.dump(facts, f, indent=1)
  print(summary)


if __name__ == "__main__":
  app.run(main)

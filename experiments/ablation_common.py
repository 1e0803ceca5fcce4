"""What the ablation scripts share: run one arm (restartable), tables, a plot, a JSON record.

An arm is one ``train_and_evaluate`` run in its own workdir; its result is the workdir's
``eval_history.jsonl`` (step, training seconds without eval/checkpointing, EER, minDCF).
``check_pooled_corpora`` is the MultiReader ablation's data check (here, not in the flag
module, so tests import it without defining flags).
"""

import collections
import hashlib
import json
import os
import sys
import textwrap

from absl import flags, logging
from ml_collections import config_flags

from experiments import reporting, resume, training_loop
from ge2e_jax import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags(module: str, config: str, config_help: str, *, steps: int, eval_every: int,
                 workdir: str):
  """The flags every ablation has, filed under the ablation's ``module`` (its ``--help``
  lists them): its base ``--config`` (``experiments/configs/<config>``), the arms'
  ``--steps`` and ``--eval_every``, and ``--workdir`` (one workdir per arm)."""
  config_flags.DEFINE_config_file("config", os.path.join(ROOT, "experiments/configs", config),
                                  config_help)
  flags.DEFINE_integer("steps", steps, "Training steps of every arm.")
  flags.DEFINE_integer("eval_every", eval_every,
                       "Evaluate (and checkpoint) every this many steps.")
  flags.DEFINE_string("workdir", workdir, "Root; one workdir per arm under it.")
  owner = sys.argv[0] if module == "__main__" else module  # where absl files a tool's flags
  for name in ("config", "steps", "eval_every", "workdir"):
    flags.FLAGS.register_flag_by_module(owner, flags.FLAGS[name])


def budgeted(base, steps: int, eval_every: int):
  """A copy of ``base`` trained ``steps`` steps, evaluated and checkpointed every
  ``eval_every``: every arm of an ablation gets the same budget."""
  if steps < 1 or eval_every < 1:
    raise ValueError(f"--steps and --eval_every must be >= 1; got {steps}, {eval_every}")
  config = base.copy_and_resolve_references()
  config.train.num_steps = steps
  config.train.checkpoint_every = eval_every
  config.eval.every = eval_every
  return config


def run_arm(config, workdir: str) -> list[dict]:
  """Trains ``config`` in ``workdir`` (resuming; a finished run is reused) -> its eval history.

  A workdir written for a different config (anything but ``train.num_steps``) is refused,
  so a rerun with other settings cannot silently mix two experiments.
  """
  steps = config.train.num_steps
  if os.path.exists(os.path.join(workdir, checkpoint.CONFIG_FILE)):
    old = resume.flatten(checkpoint.read_config(workdir))
    new = resume.flatten(json.loads(json.dumps(config.to_dict())))  # tuples as stored
    differing = sorted(k for k in old.keys() & new.keys()  # a field added since: not compared
                       if k != "train.num_steps" and old[k] != new[k])
    if differing:
      raise ValueError(f"{workdir} holds a run with another config (differs in {differing}); "
                       "use a fresh --workdir or delete it")
    history = _history_until(workdir, steps)
    if history and history[-1]["step"] == steps:
      logging.info("reusing the finished run in %s", workdir)
      return history
  training_loop.train_and_evaluate(config, workdir)
  return _history_until(workdir, steps)


def _history_until(workdir: str, steps: int) -> list[dict]:
  if not os.path.exists(os.path.join(workdir, reporting.EVAL_HISTORY)):
    return []
  return [r for r in reporting.read_eval_history(workdir) if r["step"] <= steps]


def read_split(name: str, split: str, data_dir):
  """{utterance id: (speaker, sha1 of the int16 audio bytes)} of a prepared split."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TensorFlow
  return {ex["utterance"]: (ex["speaker"], hashlib.sha1(ex["audio"].tobytes()).hexdigest())
          for ex in corpus.iterate(name, split, data_dir)}


def check_pooled_corpora(target: str, aux: str, pooled: str, data_dir) -> dict:
  """Raises unless the three corpora make a leak-free, like-for-like comparison; returns facts."""
  split = {(name, s): read_split(name, s, data_dir)
           for name in (target, aux, pooled) for s in ("train", "test")}
  speakers = {key: {spk for spk, _ in utts.values()} for key, utts in split.items()}
  evaluated = speakers[target, "test"]
  for name in (target, aux, pooled):
    leaked = evaluated & speakers[name, "train"]
    if leaked:
      raise ValueError(f"{len(leaked)} evaluation speakers of {target}:test are in {name}:train"
                       f" (e.g. {sorted(leaked)[:3]}): the evaluation would not be held out")
  if split[pooled, "test"] != split[target, "test"]:
    raise ValueError(f"{pooled}:test is not {target}:test; the arms would score different trials")
  def audio(name):
    return collections.Counter(digest for _, digest in split[name, "train"].values())
  if audio(pooled) != audio(target) + audio(aux):
    raise ValueError(f"{pooled}:train is not exactly the audio of {target}:train + {aux}:train")
  if speakers[pooled, "train"] != speakers[target, "train"] | speakers[aux, "train"]:
    raise ValueError(f"{pooled}:train speakers are not those of {target}:train + {aux}:train")
  return {
      "eval_speakers": len(evaluated), "eval_utterances": len(split[target, "test"]),
      "target_train_speakers": len(speakers[target, "train"]),
      "target_train_utterances": len(split[target, "train"]),
      "aux_train_speakers": len(speakers[aux, "train"]),
      "aux_train_utterances": len(split[aux, "train"]),
      "pooled_train_speakers": len(speakers[pooled, "train"]),
      "pooled_train_utterances": len(split[pooled, "train"]),
      "target_voices_also_in_aux_train": len(speakers[target, "train"] & speakers[aux, "train"]),
  }


def _conditions(histories: dict[str, list[dict]]) -> list[str]:
  """The held-out conditions (config.eval.conditions) every arm's last evaluation scored."""
  names = None
  for history in histories.values():
    found = list(history[-1].get("conditions", {}))
    names = found if names is None else [n for n in names if n in found]
  return names or []


def summary_table(histories: dict[str, list[dict]]) -> str:
  """One row per arm: final EER (main split, then each held-out condition), final minDCF,
  best EER, training seconds."""
  conditions = _conditions(histories)
  rows = ["| arm | final EER | " + "".join(f"{c} | " for c in conditions) +
          "final minDCF | best EER (step) | train s | s/step |",
          "|---|---:|" + "---:|" * len(conditions) + "---:|---:|---:|---:|"]
  for name, history in histories.items():
    last = history[-1]
    best = min(history, key=lambda r: r["eer"])
    extra = "".join(f"{100 * last['conditions'][c]['eer']:.2f}% | " for c in conditions)
    rows.append(f"| {name} | {100 * last['eer']:.2f}% | {extra}{last['min_dcf']:.3f} | "
                f"{100 * best['eer']:.2f}% ({best['step']}) | {last['train_seconds']:.0f} | "
                f"{last['train_seconds'] / last['step']:.3f} |")
  return "\n".join(rows)


def _eer_at(record: dict, condition: str | None) -> float:
  return record["eer"] if condition is None else record["conditions"][condition]["eer"]


def time_to_eer_table(histories: dict[str, list[dict]]) -> str:
  """Training seconds (and steps) each arm needs to first reach a held-out EER.

  Per condition the target is the worst of the arms' best EERs -- the lowest level every
  arm reaches -- so each arm has a time; the ratio is to the first arm's.
  """
  names = list(histories)
  rows = ["| condition | target EER | " + " | ".join(f"{n}: s (step)" for n in names) +
          " | " + " | ".join(f"{n} / {names[0]}" for n in names[1:]) + " |",
          "|---|---:|" + "---:|" * (2 * len(names) - 1)]
  for condition in [None] + _conditions(histories):
    target = max(min(_eer_at(r, condition) for r in h) for h in histories.values())
    first = {n: next(r for r in h if _eer_at(r, condition) <= target)
             for n, h in histories.items()}
    cells = [f"{first[n]['train_seconds']:.0f} ({first[n]['step']})" for n in names]
    ratios = [f"{first[n]['train_seconds'] / first[names[0]]['train_seconds']:.2f}"
              for n in names[1:]]
    rows.append(f"| {condition or 'main split'} | {100 * target:.2f}% | " +
                " | ".join(cells + ratios) + " |")
  return "\n".join(rows)


def steps_table(histories: dict[str, list[dict]]) -> str:
  """EER, minDCF and training seconds of every arm at every evaluated step."""
  names = list(histories)
  by_step = {name: {r["step"]: r for r in history} for name, history in histories.items()}
  steps = sorted({s for table in by_step.values() for s in table})
  rows = ["Cells: EER / minDCF / training seconds at that step.", "",
          "| step | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
  for step in steps:
    cells = []
    for name in names:
      r = by_step[name].get(step)
      cells.append(f"{100 * r['eer']:.2f}% / {r['min_dcf']:.3f} / {r['train_seconds']:.0f} s"
                   if r else "")
    rows.append(f"| {step} | " + " | ".join(cells) + " |")
  return "\n".join(rows)


def plot(histories: dict[str, list[dict]], path: str, title: str):
  """Two panels: EER against steps and against training seconds."""
  import matplotlib  # pylint: disable=g-import-not-at-top  # optional: the plots extra
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
  for name, history in histories.items():
    eer = [100 * r["eer"] for r in history]
    by_step.plot([r["step"] for r in history], eer, marker="o", label=name)
    by_time.plot([r["train_seconds"] for r in history], eer, marker="o", label=name)
  by_step.set(xlabel="training step", ylabel="EER (%)", title="EER vs steps")
  by_time.set(xlabel="training seconds (no eval/checkpoint)", title="EER vs training time")
  for ax in (by_step, by_time):
    ax.grid(alpha=0.3)
  by_step.legend()
  fig.suptitle(textwrap.fill(title, 100))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_outputs(root: str, stem: str, what: str, base: dict, steps: int,
                  histories: dict[str, list[dict]], record: dict) -> str:
  """Writes ``<stem>.md`` (the tables), ``.png`` and ``.json`` (``record``, the command line,
  the ``base`` config dict and the histories) under root; returns the tables."""
  title = (f"{what}, N={base['data']['n_speakers']} M={base['data']['n_utterances']}, "
           f"{steps} steps, seed {base['seed']}")
  tables = (f"## {title}\n\n{summary_table(histories)}\n\n"
            f"Training seconds to reach each EER:\n\n{time_to_eer_table(histories)}\n\n"
            f"{steps_table(histories)}\n")
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, f"{stem}.md"), "w") as f:
    f.write(tables)
  plot(histories, os.path.join(root, f"{stem}.png"), title)
  with open(os.path.join(root, f"{stem}.json"), "w") as f:
    json.dump({"command": " ".join(sys.argv), "base_config": base, **record,
               "histories": histories}, f, indent=1)
  return tables

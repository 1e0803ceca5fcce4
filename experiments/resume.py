"""Start or resume a run in a workdir without ever losing it to a changed config.

``resume`` runs before the first step: it refuses a config that differs from the one the
workdir's checkpoints were written with (one line naming the fields; nothing touched),
restores the newest checkpoint that verifies (``ge2e_jax.checkpoint``: damaged steps are
set aside, a workdir with no usable step stops unless ``train.allow_fresh_start``, a step
without checksums is used only with ``train.allow_unverified_checkpoint``) and only then lets
the caller write ``config.json``. The config is compared with the copy every checkpoint step
stores (``position["config"]``) as well as with config.json, so a lost or edited config.json
never lets another experiment resume the run.
"""

import json
import os

import jax
import numpy as np
from absl import logging

from data_pipelines import source_specs
from ge2e_jax import checkpoint

# Fields that may change when a run resumes: how long it trains, how it reports and keeps
# checkpoints, how it is evaluated, where the corpus lies, how the step is split for memory
# (encoder_chunks: the same gradients up to float summation order, so a run that stopped
# for lack of memory can go on with more chunks). A prefix ending in "." covers a section.
# Any other change would make the resumed run another experiment.
MAY_CHANGE = ("train.num_steps", "train.log_every", "train.checkpoint_every", "train.keep_last",
              "train.keep_best", "train.max_nonfinite_streak", "train.allow_fresh_start",
              "train.allow_unverified_checkpoint", "train.allow_batch_change", "train.init_from", "train.encoder_chunks", "eval.",
              "data.data_dir", "data.storage", "data.cache_dir")
# The batch shape: changes only with train.allow_batch_change (the loss scale and the
# speakers per step change, so the run no longer matches one trained with either shape).
BATCH_SHAPE = ("data.n_speakers", "data.n_utterances", "data.crop")


def config_changes(old: dict, new: dict, allow_batch_change: bool = False) -> list[str]:
  """'field: old -> new' for each field of ``new`` that a resumed run must not change.

  Fields only one side has (a config written by an older version) are not compared; the
  sources of a config written when they were strings are compared in today's form.
  """
  old, new = flatten(source_specs.upgraded(old)), flatten(source_specs.upgraded(new))
  allowed = MAY_CHANGE + (BATCH_SHAPE if allow_batch_change else ())
  return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in sorted(old.keys() & new.keys())
          if old[key] != new[key]
          and not any(key == a or (a.endswith(".") and key.startswith(a)) for a in allowed)]


def check_config(workdir: str, config):
  """Raises CheckpointMismatchError when the workdir's checkpoints were written for another
  config: per the copy stored in its newest step (``checkpoint.step_config``) and per its
  config.json. A workdir without checkpoints may take any config; one with checkpoints
  whose config.json is missing, empty or unreadable resumes only against a step's copy
  (the trainer then rewrites config.json), else stops."""
  directory = os.path.join(workdir, checkpoint.CHECKPOINT_DIR)
  if not os.path.isdir(directory) or not any(e.isdigit() for e in os.listdir(directory)):
    return
  values = json.loads(json.dumps(config.to_dict()))  # as config.json holds it
  stored = checkpoint.step_config(workdir)
  records = []
  try:
    recorded = checkpoint.read_config(workdir)
    if not recorded:
      raise ValueError(f"{os.path.join(workdir, checkpoint.CONFIG_FILE)} is empty")
    records.append(("its config.json", recorded))
  except (OSError, ValueError) as err:
    if stored is None:
      raise checkpoint.CheckpointMismatchError(
          f"{err}; {directory} holds checkpoints but none stores its run's config (written "
          "before they did), so this config cannot be checked against the run's: restore "
          "config.json; nothing was changed") from None
    logging.warning("%s; checking this config against the copy stored in checkpoint step %d "
                    "(config.json is rewritten once the run resumes)", err, stored[0])
  if stored is not None:
    records.append((f"the config stored in its checkpoint step {stored[0]}", stored[1]))
  for source, recorded in records:
    changes = config_changes(recorded, values, config.train.allow_batch_change)
    if changes:
      batch = [c for c in changes if c.split(":")[0] in BATCH_SHAPE]
      hint = " (train.allow_batch_change=True allows the batch-shape ones)" if batch else ""
      raise checkpoint.CheckpointMismatchError(
          f"{workdir} holds checkpoints of a run with another config ({source}): "
          f"{'; '.join(changes)}{hint}; nothing was changed: resume with the run's config or "
          "use another workdir")


def restore_or_start(config, workdir: str, checkpointer: checkpoint.Checkpointer, state, rng):
  """(start step, state, rng, training seconds): the fresh ones, or a verified checkpoint's.

  Call ``check_config`` first (before the slow set-up of a run).
  """
  restored = checkpointer.restore(
      state, allow_fresh_start=config.train.allow_fresh_start,
      allow_unverified=config.train.allow_unverified_checkpoint)
  if restored is None:
    return 0, state, rng, 0.0
  step, state, position = restored
  if position["data_step"] != step or position["seed"] != config.seed:
    raise checkpoint.CheckpointMismatchError(
        f"checkpoint {step} in {workdir} was written for data step {position['data_step']} / "
        f"seed {position['seed']}, not {step} / {config.seed}: is this the same run's workdir?")
  logging.info("resumed from step %d in %s", step, checkpointer.directory)
  rng = jax.random.wrap_key_data(np.asarray(position["rng"], np.uint32))
  return step, state, rng, position["train_seconds"]


def flatten(tree: dict, prefix: str = "") -> dict:
  """{"a": {"b": 1}} -> {"a.b": 1}: config fields by their dotted names."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out

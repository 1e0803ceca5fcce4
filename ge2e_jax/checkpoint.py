"""Orbax checkpoints of a training run: train state + data-pipeline position (+ metrics).

Layout of a workdir:
  <workdir>/config.json            resolved run config (written by the trainer)
  <workdir>/checkpoints/<step>/    one orbax step: items "state" (TrainState pytree) and
                                   "data" (JSON: pipeline position, seed, training seconds
                                   and the RNG key data); metrics (e.g. eval EER) go with
                                   the step.

Saves are asynchronous and atomic (orbax writes to a temporary directory and renames
it), so a job killed at any moment leaves only complete steps. Kept: the last
``keep_last`` steps plus the ``keep_best`` with the lowest ``best_metric``.
A step that fails to restore (truncated or corrupt files) is reported, moved aside to
``<step>.corrupt-<unix time>`` (nothing is deleted) and the step before it is tried.
"""

import json
import logging
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"

log = logging.getLogger(__name__)


class NonFiniteStateError(RuntimeError):
  """The train state holds NaN or Inf; it must never reach a checkpoint."""


class Checkpointer:
  """Save and restore (state, data position) of one run in ``<workdir>/checkpoints``."""

  def __init__(self, workdir: str, *, keep_last: int = 3, keep_best: int = 1,
               best_metric: str = "eer", async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    self._options = dict(keep_last=keep_last, keep_best=keep_best, best_metric=best_metric,
                         async_save=async_save)
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    o = self._options
    metric = lambda m: m.get(o["best_metric"], float("inf"))  # lower is better
    keep = [policies.LatestN(o["keep_last"])]
    if o["keep_best"]:
      keep.append(policies.BestN(get_metric_fn=metric, reverse=True,
                                 n=o["keep_best"], keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy(keep),
        best_fn=metric, best_mode="min",
        enable_async_checkpointing=o["async_save"], cleanup_tmp_directories=True)
    return ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

  def save(self, step: int, state, data_position: dict, metrics: dict | None = None,
           force: bool = False) -> bool:
    """Start an (async) save of step; refuses a state holding NaN/Inf."""
    bad = [jax.tree_util.keystr(path) for path, leaf in jax.tree_util.tree_leaves_with_path(state)
           if np.issubdtype(np.asarray(leaf).dtype, np.floating)
           and not np.all(np.isfinite(np.asarray(leaf)))]
    if bad:
      raise NonFiniteStateError(f"not saving step {step}: non-finite values in {bad[:5]}")
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(data_position))
    return self._manager.save(step, args=args, metrics=metrics, force=force)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def best_step(self) -> int | None:
    return self._manager.best_step()

  def restore(self, abstract_state, step: int | None = None):
    """(step, state, data position) of ``step`` or of the newest readable step; None if none.

    ``abstract_state`` gives shapes, dtypes and shardings (e.g. the freshly initialised
    state, or ``jax.eval_shape`` of it).
    """
    self.wait()
    candidates = [step] if step is not None else self.steps()[::-1]
    for candidate in candidates:
      try:
        restored = self._manager.restore(candidate, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
      except Exception as err:  # orbax/tensorstore raise many types for damaged files
        if step is not None:
          raise
        self._quarantine(candidate, err)
        continue
      return candidate, restored["state"], restored["data"]
    return None

  def restore_untyped(self, step: int):
    """The state pytree of ``step`` as saved (numpy-backed), without a template."""
    self.wait()
    return self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))["state"]

  def _quarantine(self, step: int, err: Exception):
    path = os.path.join(self.directory, str(step))
    aside = f"{path}.corrupt-{int(time.time())}"
    log.error("checkpoint %s is unreadable (%s: %s); moved to %s, trying the one before",
              path, type(err).__name__, str(err).splitlines()[0][:300], aside)
    self._manager.close()
    os.rename(path, aside)
    self._manager = self._open()

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def write_config(workdir: str, config: dict):
  os.makedirs(workdir, exist_ok=True)
  tmp = os.path.join(workdir, CONFIG_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(workdir, CONFIG_FILE))


def read_config(workdir: str) -> dict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a ge2e_jax training workdir?")
  with open(path) as f:
    return json.load(f)


def restore_params(workdir: str, which: str = "best"):
  """The params pytree of a workdir's best (lowest EER; latest if none scored) or latest step.

  Restores without a template (plain numpy-backed arrays), so it needs no model config.
  """
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoints under {directory}")
  checkpointer = Checkpointer(workdir, async_save=False)
  try:
    step = checkpointer.best_step() if which == "best" else None
    step = step if step is not None else (checkpointer.steps() or [None])[-1]
    if step is None:
      raise FileNotFoundError(f"{directory} holds no complete checkpoint")
    return step, checkpointer.restore_untyped(step)["params"]
  finally:
    checkpointer.close()

"""Orbax checkpoints of a training run: train state + data-pipeline position (+ metrics).

Layout of a workdir:
  <workdir>/config.json            resolved run config (written by the trainer)
  <workdir>/checkpoints/<step>/    one orbax step: items "state" (TrainState pytree),
                                   "data" (JSON: pipeline position, seed, training seconds
                                   and the RNG key data) and "checksums" (JSON: sha256 of
                                   every state array and of the data position); metrics
                                   (e.g. eval EER) go with the step.
  <workdir>/checkpoints/<step>/files.sha256.json   sha256 of every file of the step, written
                                   once its async save has finished (at the next save or close).

Saves are asynchronous and atomic (orbax writes to a temporary directory and renames
it), so a job killed at any moment leaves only complete steps. Kept: the last
``keep_last`` steps plus the ``keep_best`` with the lowest ``best_metric``.

Every restore verifies. Saved arrays whose names, shapes or dtypes are not those of the
state asked for mean another model or optimizer: ``CheckpointMismatchError``, nothing is
touched. A step is damaged when its files do not hash to their record, it does not restore
(truncated, garbled or missing files, a garbled metrics file) or its restored values do not
hash to their checksums; the step before it is then tried, with a line naming the step and
why. The file check comes first: a restore that fails part-way leaves orbax's tensorstore
reads running into a closed event loop (pages of "Event loop is closed"). The training run
moves damaged steps to ``<step>.corrupt-<unix time>`` (nothing is deleted) once a good one
is found; readers (``restore_params``) only skip them. When no step is good nothing is
moved and ``NoUsableCheckpointError`` is raised, unless a fresh start is explicitly allowed.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from ge2e_jax import atomic_file

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
CHECKSUMS = "checksums"
FILE_CHECKSUMS = "files.sha256.json"
_TMP_MARKER = ".orbax-checkpoint-tmp"
# Reads nothing when it opens (metrics are read step by step), creates and cleans up nothing
# (orbax's read_only=True does the same but warns each time it opens).
_READ_ONLY = ocp.CheckpointManagerOptions(create=False, cleanup_tmp_directories=False,
                                          lightweight_initialize=True)

log = logging.getLogger(__name__)


class NonFiniteStateError(RuntimeError):
  """The train state holds NaN or Inf; it must never reach a checkpoint."""


class CheckpointMismatchError(ValueError):
  """The checkpoints were written for another config: not damage, nothing is touched."""


class NoUsableCheckpointError(RuntimeError):
  """A checkpoint directory holds entries but no step that restores and verifies."""


class UnverifiedCheckpointError(NoUsableCheckpointError):
  """Training would resume from a step without checksums; nothing is touched."""


class CheckpointWriteError(OSError):
  """A save failed for lack of space; the complete steps before it are untouched."""


class _Damaged(Exception):
  """One step does not restore or verify; the message says why."""


class Checkpointer:
  """Save and restore (state, data position) of one run in ``<workdir>/checkpoints``.

  ``read_only`` (for loading params while a run may be writing) never writes, moves or
  cleans up anything.
  """

  def __init__(self, workdir: str, *, keep_last: int = 3, keep_best: int = 1,
               best_metric: str = "eer", async_save: bool = True, read_only: bool = False):
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    self.read_only = read_only
    self._options = dict(keep_last=keep_last, keep_best=keep_best, best_metric=best_metric,
                         async_save=async_save)
    if not read_only:
      # Every process first: otherwise one process's probe below may find the directory
      # another just created and enter another orbax sync point (a name-mismatch abort).
      os.makedirs(self.directory, exist_ok=True)
    self._metrics, self._damaged = self._read_metrics()
    self._unrecorded = set()  # steps saved here whose files are not hashed yet
    self._manager = self._open()

  def _read_metrics(self):
    """({step: metrics or None}, {step: why} of garbled metrics files), reading step by step.

    An orbax manager that tracks the best step reads every step's metrics when it opens
    and fails as a whole on one garbled file.
    """
    metrics, damaged = {}, {}
    if not os.path.isdir(self.directory):
      return metrics, damaged
    probe = ocp.CheckpointManager(self.directory, options=_READ_ONLY)
    try:
      for step in probe.all_steps():
        try:
          metrics[step] = probe.metrics(step)
        except Exception as err:  # pylint: disable=broad-except  # any read or parse error
          damaged[step] = f"metrics file: {_reason(err)}"
    finally:
      probe.close()
    return metrics, damaged

  def _open(self) -> ocp.CheckpointManager:
    """The run's manager; read-only (no metrics read, no clean-up) for readers and until
    every step with a garbled metrics file is set aside."""
    o = self._options
    handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler(),
                CHECKSUMS: ocp.JsonCheckpointHandler()}
    if self.read_only or self._damaged:
      return ocp.CheckpointManager(self.directory, options=_READ_ONLY, item_handlers=handlers)
    metric = lambda m: m.get(o["best_metric"], float("inf"))  # lower is better
    keep = [policies.LatestN(o["keep_last"])]
    if o["keep_best"]:
      keep.append(policies.BestN(get_metric_fn=metric, reverse=True,
                                 n=o["keep_best"], keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy(keep),
        best_fn=metric, best_mode="min",
        enable_async_checkpointing=o["async_save"], cleanup_tmp_directories=True)
    return ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def save(self, step: int, state, data_position: dict, metrics: dict | None = None,
           force: bool = False) -> bool:
    """Start an (async) save of step with its checksums; refuses a state holding NaN/Inf.

    The checksums hash the host copy of the very arrays handed to orbax.
    """
    if self.read_only or self._damaged:
      raise RuntimeError(f"{self.directory} is open read-only or holds damaged steps "
                         f"{sorted(self._damaged)}: restore() first, which sets them aside")
    host = _host_leaves(state)
    bad = _non_finite(host)
    if bad:
      raise NonFiniteStateError(f"not saving step {step}: non-finite values in {bad[:5]}")
    checksums = {"state": {name: _digest(value) for name, value in host.items()},
                 "data": _json_digest(data_position)}
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data=ocp.args.JsonSave(data_position),
                              **{CHECKSUMS: ocp.args.JsonSave(checksums)})
    self.wait()  # orbax waits for the previous save anyway; then its files are final
    self._metrics[step] = metrics
    with self._disk_full_as_one_error():
      saved = self._manager.save(step, args=args, metrics=metrics, force=force)
    if saved:
      self._unrecorded.add(step)
    return saved

  def _record_files(self):
    """Writes FILE_CHECKSUMS into each finished step saved here (the chief's job)."""
    steps, self._unrecorded = self._unrecorded & set(self._manager.all_steps()), set()
    if jax.process_index() != 0:
      return
    for step in steps:
      step_dir = os.path.join(self.directory, str(step))
      tmp = os.path.join(step_dir, FILE_CHECKSUMS + ".tmp")
      with open(tmp, "w") as f:
        json.dump(_file_digests(step_dir), f, indent=0, sort_keys=True)
      os.replace(tmp, os.path.join(step_dir, FILE_CHECKSUMS))

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def best_step(self) -> int | None:
    """The step with the lowest ``best_metric`` (the newest of equals); None if none scored."""
    name, steps = self._options["best_metric"], set(self._manager.all_steps())
    scored = [(m[name], -step) for step, m in self._metrics.items()
              if step in steps and isinstance(m, dict) and isinstance(m.get(name), (int, float))]
    return -min(scored)[1] if scored else None

  def restore(self, abstract_state, *, allow_fresh_start: bool = False,
              allow_unverified: bool = False):
    """(step, state, data position) of the newest step that verifies; None to start fresh.

    ``abstract_state`` gives shapes, dtypes and shardings (e.g. the freshly initialised
    state, or ``jax.eval_shape`` of it). Damaged steps (newer than the good one, or with a
    garbled metrics file) are moved aside. With no good step in a directory that holds
    anything, raises ``NoUsableCheckpointError`` (nothing moved) unless
    ``allow_fresh_start``, which moves the damaged steps aside and returns None. A step
    without checksums (written before them, or its checksums lost) raises
    ``UnverifiedCheckpointError`` (nothing moved) unless ``allow_unverified``: then its
    restored values must all be finite, else it counts as damaged.
    """
    self.wait()
    step, restored, failures = self._first_good(self.steps()[::-1], abstract_state,
                                                allow_unverified)
    if step is None and (failures or self._leftovers()) and not allow_fresh_start:
      raise NoUsableCheckpointError(self._nothing_usable(failures))
    if failures:
      self._set_aside(failures, f"resuming from step {step}" if step is not None else
                      "starting from step 0 (config.train.allow_fresh_start)")
    if step is None:
      return None
    return step, restored["state"], restored["data"]

  def restore_params(self, which: str = "best"):
    """(step, params) of the best or latest step that verifies, else of the newest older one
    that does; damaged steps are skipped with a logged line, never moved."""
    self.wait()
    best = self.best_step() if which == "best" else None
    candidates = [best] if best is not None else []
    candidates += [s for s in self.steps()[::-1] if s != best]
    step, restored, failures = self._first_good(candidates, None)
    if step is None:
      raise NoUsableCheckpointError(self._nothing_usable(failures, moved=False))
    for bad, why in failures.items():
      log.error("checkpoint %s is unreadable (%s); using step %d instead",
                os.path.join(self.directory, str(bad)), why, step)
    return step, restored["state"]["params"]

  def _first_good(self, candidates, abstract_state, allow_unverified: bool = True):
    """(first of ``candidates`` that restores and verifies or None, its items, {step: why})."""
    failures = {step: why for step, why in self._damaged.items() if step in candidates}
    for step in candidates:
      if step in failures:
        continue
      try:
        return step, self._restore_verified(step, abstract_state, allow_unverified), failures
      except _Damaged as err:
        failures[step] = str(err)
    return None, None, failures

  def _restore_verified(self, step: int, abstract_state, allow_unverified: bool = True):
    """The step's items, checked against ``abstract_state`` (if given) and its checksums."""
    step_dir = os.path.join(self.directory, str(step))
    verified = os.path.isdir(os.path.join(step_dir, CHECKSUMS))
    if not verified and not allow_unverified:
      raise UnverifiedCheckpointError(
          f"checkpoint {step_dir} has no checksums (written before they were added, or its "
          f"{CHECKSUMS}/ was lost): training does not resume from unverified values; nothing "
          "was changed. Set config.train.allow_unverified_checkpoint=True to use it (its "
          "values must then be finite), or remove the step")
    _check_files(step_dir)
    if abstract_state is not None:
      self._check_matches(step, abstract_state)
    items = dict(state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore())
    if verified:
      items[CHECKSUMS] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as err:  # orbax/tensorstore raise many types for damaged files
      raise _Damaged(_reason(err)) from err
    if not verified:
      bad = _non_finite(_host_leaves(restored["state"]))
      if bad:
        raise _Damaged(f"no checksums, and non-finite values in {bad[:5]}")
      log.warning("checkpoint %s has no checksums (written before they were added); its "
                  "values (all finite) are used unverified", step_dir)
      return restored
    try:
      saved = restored[CHECKSUMS]["state"]
      got = {_path_name(path): _digest(np.asarray(leaf))
             for path, leaf in jax.tree_util.tree_leaves_with_path(restored["state"])}
      differing = sorted(k for k in saved.keys() | got.keys() if saved.get(k) != got.get(k))
      if _json_digest(restored["data"]) != restored[CHECKSUMS]["data"]:
        differing.append("data position")
    except (KeyError, TypeError, AttributeError) as err:
      raise _Damaged(f"checksums file: {_reason(err)}") from err
    if differing:
      raise _Damaged(f"checksum mismatch in {differing[:5]}"
                     + (f" and {len(differing) - 5} more" if len(differing) > 5 else ""))
    return restored

  def _check_matches(self, step: int, abstract_state):
    """Raises CheckpointMismatchError unless the step saved exactly the state's arrays.

    Checked on orbax's metadata before restoring: a restore into the wrong shapes fails
    part-way and leaves tensorstore reads running into a closed event loop (pages of
    "Event loop is closed" at exit).
    """
    try:
      saved = _leaf_specs(self._manager.item_metadata(step)["state"])
    except Exception as err:  # pylint: disable=broad-except  # unreadable metadata: damage
      raise _Damaged(f"metadata: {_reason(err)}") from err
    if not saved:
      raise _Damaged("metadata: no arrays listed (state/_METADATA missing or empty)")
    wanted = _leaf_specs(abstract_state)
    differing = [f"{name} saved {saved.get(name, 'absent')}, "
                 f"this config {wanted.get(name, 'absent')}"
                 for name in sorted(saved.keys() | wanted.keys())
                 if saved.get(name) != wanted.get(name)]
    if differing:
      raise CheckpointMismatchError(
          f"checkpoint {os.path.join(self.directory, str(step))} was written for another "
          f"model or optimizer ({len(differing)} arrays differ: {'; '.join(differing[:3])}); "
          "nothing was changed: resume with the run's config or use another workdir")

  def _leftovers(self) -> list[str]:
    """Entries of the checkpoint directory other than steps and orbax temporaries."""
    if not os.path.isdir(self.directory):
      return []
    return sorted(e for e in os.listdir(self.directory)
                  if not e.isdigit() and _TMP_MARKER not in e)

  def _nothing_usable(self, failures: dict, moved: bool = True) -> str:
    found = "; ".join(f"step {s}: {why}" for s, why in sorted(failures.items()))
    found = found or f"only {self._leftovers()[:5]}"
    fix = (" Fix or remove them, or set config.train.allow_fresh_start=True to move them "
           "aside and train from step 0" if moved else "")
    return f"{self.directory} holds no usable checkpoint ({found}); nothing was moved.{fix}"

  def _set_aside(self, failures: dict, then: str):
    """Moves each damaged step to ``<step>.corrupt-<time>``, then reopens the manager."""
    self._manager.close()
    for step, why in sorted(failures.items(), reverse=True):
      path = os.path.join(self.directory, str(step))
      aside = f"{path}.corrupt-{int(time.time())}"
      log.error("checkpoint %s is unreadable (%s); moved to %s, %s", path, why, aside, then)
      os.rename(path, aside)
      self._metrics.pop(step, None)
      self._damaged.pop(step, None)
    self._manager = self._open()

  def wait(self):
    with self._disk_full_as_one_error():
      self._manager.wait_until_finished()
      self._record_files()

  @contextlib.contextmanager
  def _disk_full_as_one_error(self):
    """A save that runs out of space (orbax raises it from its threads at the next wait)
    becomes one CheckpointWriteError naming the complete steps, which stay usable."""
    try:
      yield
    except Exception as err:  # pylint: disable=broad-except  # orbax wraps OSError variously
      if not disk_full(err):
        raise
      self._unrecorded.clear()
      first = str(err).strip().splitlines()[0][:300]
      raise CheckpointWriteError(
          f"saving a checkpoint in {self.directory} failed: no space left on "
          f"device ({first}); the complete steps {self.steps()} are intact: free space, then "
          "the same command resumes from the last of them") from None

  def close(self):
    self.wait()
    self._manager.close()


def _host_leaves(tree) -> dict:
  return {_path_name(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _non_finite(host: dict) -> list[str]:
  """Names of the floating-point arrays of ``host`` ({name: array}) holding NaN or Inf."""
  return [name for name, value in host.items()
          if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value))]


def step_config(workdir: str) -> tuple[int, dict] | None:
  """(step, run config) stored in the newest step that holds an intact copy, else None.

  The trainer stores the run's config in every step's data position (under "config"), so a
  lost or edited config.json never decides what a resumed run is compared against. Read as
  plain JSON (data/metadata), checked against the step's file record and checksums.
  """
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  steps = sorted((int(e) for e in os.listdir(directory) if e.isdigit()), reverse=True) if (
      os.path.isdir(directory)) else []
  for step in steps:
    step_dir = os.path.join(directory, str(step))
    try:
      _check_files(step_dir)
      with open(os.path.join(step_dir, "data", "metadata")) as f:
        data = json.load(f)
      with open(os.path.join(step_dir, CHECKSUMS, "metadata")) as f:
        if json.load(f)["data"] != _json_digest(data):
          continue
    except (_Damaged, OSError, ValueError, KeyError, TypeError):
      continue
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
      return step, data["config"]
  return None


def disk_full(err: BaseException) -> bool:
  """Whether ``err`` (or what orbax wrapped in it) is "no space left on device"."""
  return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or (
      "No space left on device" in str(err))


def _path_name(path) -> str:
  """"params/encoder/lstmp_0/bias": one name for a state leaf, its orbax metadata and its
  template-free restore (attribute, dict key and sequence index alike)."""
  return "/".join(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k))))
                  for k in path)


def _file_digests(step_dir: str) -> dict:
  """{path relative to step_dir: sha256} of every file of a step but FILE_CHECKSUMS."""
  digests = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, step_dir)
      if relative.startswith(FILE_CHECKSUMS):
        continue
      with open(path, "rb") as f:
        digests[relative] = hashlib.file_digest(f, "sha256").hexdigest()
  return digests


def _check_files(step_dir: str):
  """Raises _Damaged when a file of the step differs from its FILE_CHECKSUMS record."""
  record = os.path.join(step_dir, FILE_CHECKSUMS)
  if not os.path.exists(record):
    return  # killed between the save and the record: the restored values are still verified
  try:
    with open(record) as f:
      recorded = dict(json.load(f))
    actual = _file_digests(step_dir)
  except (OSError, ValueError, TypeError) as err:
    raise _Damaged(f"{FILE_CHECKSUMS}: {_reason(err)}") from err
  differing = sorted(name for name, digest in recorded.items() if actual.get(name) != digest)
  if differing:
    raise _Damaged(f"{len(differing)} file(s) differ from their checksums: {differing[:3]}")


def _leaf_specs(tree) -> dict:
  return {_path_name(path): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _digest(value: np.ndarray) -> str:
  value = np.ascontiguousarray(value)
  return hashlib.sha256(f"{value.dtype.str}{value.shape}".encode() + value.tobytes()).hexdigest()


def _json_digest(value) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _reason(err: Exception) -> str:
  lines = str(err).strip().splitlines()
  return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def write_config(workdir: str, config: dict):
  os.makedirs(workdir, exist_ok=True)
  with atomic_file.atomic_write(os.path.join(workdir, CONFIG_FILE)) as f:
    json.dump(config, f, indent=2, sort_keys=True)


def read_config(workdir: str) -> dict:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a ge2e_jax training workdir?")
  with open(path) as f:
    try:
      values = json.load(f)
    except ValueError as err:
      raise ValueError(f"{path} is not readable JSON ({err})") from None
  if not isinstance(values, dict):
    raise ValueError(f"{path} holds {type(values).__name__}, not the run's config object")
  return values


def restore_params(workdir: str, which: str = "best"):
  """(step, params pytree) of a workdir's best (lowest EER; latest if none scored) or latest
  step that verifies, else of the newest older one that does (each skip is logged).

  Restores without a template (plain numpy-backed arrays), so it needs no model config;
  it moves, writes and deletes nothing (a run may be training in the workdir).
  """
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoints under {directory}")
  checkpointer = Checkpointer(workdir, async_save=False, read_only=True)
  try:
    if not checkpointer.steps():
      raise FileNotFoundError(f"{directory} holds no complete checkpoint")
    return checkpointer.restore_params(which)
  finally:
    checkpointer.close()

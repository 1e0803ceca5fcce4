"""The training loop: config + workdir -> a trained, evaluated, checkpointed model.

``train_and_evaluate(config, workdir)`` (flax/examples style) builds the tf.data speaker
batches (one source, or MultiReader), the sharded train step over every device of every
process, and runs it with periodic logs, TensorBoard summaries, held-out evaluation and
orbax checkpoints. Started again with the same command after any crash (SIGKILL
included) it resumes from the last complete checkpoint -- train state, data position and
RNG -- and ends with the same parameters as a run never interrupted. On SIGTERM
(``experiments/preemption.py``) it finishes the current step, saves it, says so on stderr
and ends the process with status 0 (``preemption.Preempted``).
"""

import collections
import json
import os
import time

import jax
import jax.numpy as jnp

from data_pipelines import global_batch as global_batch_lib
from data_pipelines import multireader as multireader_lib
from data_pipelines import speaker_batches as speaker_batches_lib
from data_pipelines import source_specs
from experiments import config_checks, finetune, held_out, preemption, reporting, resume
from ge2e_jax import augment, checkpoint, model, model_card, optim, train_step

# How many dispatched steps the host may run ahead of the device. Unbounded, the host queues
# a batch (and the step's buffers) per step until the next log step's fetch, and the peak
# memory grows with the steps between logs (BENCHMARKS.md, "Corpora larger than RAM"). Two
# keep the next batch ready while a step runs.
MAX_STEPS_AHEAD = 2


class NonFiniteLossError(RuntimeError):
  """Too many consecutive steps had a NaN/Inf loss or gradient."""


def build_input(config):
  """(pipeline or MultiReader, source names, whether its batches are MultiReader-stacked)."""
  data = config.data
  sources = source_specs.sources(data)
  common = dict(n_speakers=data.n_speakers, n_utterances=data.n_utterances, crop=data.crop,
                data_dir=data.data_dir or None, process_index=jax.process_index(),
                process_count=jax.process_count(), storage=data.storage,
                cache_dir=data.cache_dir or None)
  pipelines = {name: speaker_batches_lib.speaker_batches(
      spec.corpus, "train", seed=config.seed + k, **common)
      for k, (name, spec) in enumerate(sources.items())}
  if len(pipelines) == 1:
    (name, pipeline), = pipelines.items()
    return pipeline, (name,), False
  reader = multireader_lib.MultiReader(
      pipelines, {name: spec.weight for name, spec in sources.items()}, mode=data.mode,
      seed=config.seed)
  return reader, reader.names, data.mode == "stacked"


def write_run_info(config, workdir):
  checkpoint.write_config(workdir, config.to_dict())
  with open(os.path.join(workdir, "versions.json"), "w") as f:
    json.dump(model_card.package_versions(), f, indent=2, sort_keys=True)


def train_and_evaluate(config, workdir: str):
  """Train per ``config`` in ``workdir``; returns the final train state and last eval."""
  config_checks.validate(config)
  workdir = os.path.abspath(workdir)
  resume.check_config(workdir, config)  # before the slow set-up: fail fast
  is_chief = jax.process_index() == 0
  encoder_config = model.config_from_dict(dict(config.model))
  mesh = train_step.make_mesh()
  pipeline, source_names, stacked = build_input(config)
  # config_checks: the softmax baseline has one source.
  speakers_for_softmax = len(pipeline.speakers) if config.loss.name == "softmax" else None

  optimizer = optim.make_optimizer(**config.optimizer)
  step_fn = train_step.make_train_step(encoder_config, optimizer, mesh, loss=config.loss.name,
                                  centroids=config.loss.centroids,
                                  reduction=config.loss.reduction, stacked=stacked,
                                  augment=augment.make_augmenter(config.augment),
                                  encoder_chunks=config.train.encoder_chunks)
  rng = jax.random.key(config.seed)
  params = train_step.init_params(jax.random.fold_in(rng, 0), encoder_config, speakers_for_softmax)
  state = train_step.replicate(train_step.init_state(params, optimizer), mesh)

  checkpointer = checkpoint.Checkpointer(workdir, keep_last=config.train.keep_last,
                                         keep_best=config.train.keep_best)
  try:
    start_step, state, rng, train_seconds = resume.restore_or_start(config, workdir, checkpointer,
                                                             state, rng)
    if start_step == 0 and config.train.init_from:  # a resumed fine-tune keeps its own steps
      finetune.check_source_config(config.train.init_from, config.model,
                                   config.eval.window_frames)
      params = finetune.initial_params(config.train.init_from, jax.device_get(params))
      state = train_step.replicate(train_step.init_state(params, optimizer), mesh)
  except BaseException:
    checkpointer.close()
    raise
  if is_chief:  # only once the checks passed: a refused config must not replace the run's
    write_run_info(config, workdir)
  run_config = json.loads(json.dumps(config.to_dict()))  # each step keeps the run's record

  evaluator = held_out.HeldOutEvaluator(config, encoder_config) if config.eval.every else None
  reporter = reporting.Reporter(workdir, is_chief, start_step, config.train.num_steps,
                                config.data.n_speakers * config.data.n_utterances
                                * (len(source_names) if stacked else 1), source_names)
  shardings = train_step.batch_sharding(mesh, stacked)
  batches = pipeline.iterator(start_step)
  num_steps, last_eval = config.train.num_steps, None
  # The longest non-finite streak since the last check, kept on the device: the loop fetches
  # nothing (so the host runs ahead of the device) except at log, eval and checkpoint steps.
  no_streak = jnp.zeros((), jnp.int32)  # not a state buffer: the step donates those
  worst_streak = no_streak
  in_flight = collections.deque()  # a loss per dispatched step not yet known to be done
  mark = time.perf_counter()
  notice, stopped_at = preemption.Notice(), None
  try:
    for step in range(start_step + 1, num_steps + 1):
      batch = next(batches)
      source = batch.pop("source", None)
      state, metrics = step_fn(state, global_batch_lib.global_batch(batch, shardings), rng)
      worst_streak = jnp.maximum(worst_streak, state.nonfinite_streak)
      in_flight.append(metrics["loss"])
      if len(in_flight) > MAX_STEPS_AHEAD:  # wait for an older step, not this one
        jax.block_until_ready(in_flight.popleft())
      reporter.count_step()
      log_now = step % config.train.log_every == 0 or step == num_steps
      evaluate_now = evaluator is not None and (step % config.eval.every == 0 or step == num_steps)
      preempted = notice.reached(step)
      save_now = (evaluate_now or preempted or step % config.train.checkpoint_every == 0
                  or step == num_steps)
      if not (log_now or save_now):
        continue
      check_finite(step, int(jax.device_get(worst_streak)), config.train.max_nonfinite_streak)
      worst_streak = no_streak
      if log_now:
        reporter.train(step, jax.device_get(metrics), source,
                       int(jax.device_get(state.nonfinite_steps)))
      if save_now:
        train_seconds += time.perf_counter() - mark  # training time excludes eval and saving
        scores = None
        if evaluate_now:
          last_eval = evaluator(jax.device_get(state.params))
          scores = {"eer": last_eval["eer"], "min_dcf": last_eval["min_dcf"]}
          reporter.evaluation(step, train_seconds, last_eval, evaluator.description)
          if is_chief:  # model_card.json: thresholds and their data, for verify and export
            model_card.record_training_eval(workdir, config.to_dict(), step, last_eval,
                                            evaluator.description)
        position = {"data_step": step, "seed": config.seed, "train_seconds": train_seconds,
                    "rng": jax.random.key_data(rng).tolist(), "config": run_config}
        checkpointer.save(step, state, position, metrics=scores, force=True)
        mark = time.perf_counter()
        reporter.restart_window()
      if preempted:
        stopped_at = step
        break
  finally:  # an error must not abandon a checkpoint being written
    notice.close()
    checkpointer.close()
    reporter.close()
  if stopped_at is not None:  # not a normal return: an ablation must not go on to its next arm
    raise preemption.Preempted(
        f"train: {notice.signal_name} received: saved step {stopped_at} in "
        f"{checkpointer.directory} and stopped; the same command resumes from it")
  return state, last_eval


def disk_full_report(err: BaseException, workdir: str) -> str | None:
  """The one line for a full disk met while training, else None.

  The disk may fill in a checkpoint save or in the TensorBoard writer, and a close in a
  ``finally`` block may meet it again and replace the first error: the chain is searched,
  the checkpointer's own report (which names the intact steps) first.
  """
  chain = []
  while err is not None and err not in chain:
    chain.append(err)
    err = err.__context__
  for found in chain:
    if isinstance(found, checkpoint.CheckpointWriteError):
      return str(found)
  for found in chain:
    if checkpoint.disk_full(found):
      first = str(found).strip().splitlines()[0][:300]
      return (f"writing the run's logs in {workdir} failed: no space left on device ({first}); "
              "the complete checkpoint steps are intact: free space, then the same command "
              "resumes from the last of them")
  return None


def check_finite(step: int, worst_streak: int, limit: int):
  """Raises NonFiniteLossError once ``limit`` steps in a row had a non-finite loss/gradient."""
  if worst_streak >= limit:
    raise NonFiniteLossError(
        f"by step {step}: {worst_streak} consecutive steps had a non-finite loss or gradient "
        f"(limit config.train.max_nonfinite_streak={limit}); params were left at their last "
        f"finite values, last checkpoint is kept")

"""The training loop: config + workdir -> a trained, evaluated, checkpointed model.

``train_and_evaluate(config, workdir)`` (flax/examples style) builds the tf.data speaker
batches (one source, or MultiReader), the sharded train step over every device of every
process, and runs it with periodic logs, TensorBoard summaries, held-out evaluation and
orbax checkpoints. Started again with the same command after any crash (SIGKILL
included) it resumes from the last complete checkpoint -- train state, data position and
RNG -- and ends with the same parameters as a run never interrupted.
"""

import json
import os
import platform
import time
from importlib import metadata

import jax
import numpy as np
import tensorflow as tf
from absl import logging

from data_pipelines import global_batch as global_batch_lib
from data_pipelines import multireader as multireader_lib
from data_pipelines import speaker_batches as speaker_batches_lib
from experiments import evaluation
from experiments.sources import parse_sources
from ge2e_jax import checkpoint, model, optim, train

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "tensorflow-cpu",
            "tensorflow", "tensorflow-datasets", "ml_collections")


EVAL_HISTORY = "eval_history.jsonl"


class NonFiniteLossError(RuntimeError):
  """Too many consecutive steps had a NaN/Inf loss or gradient."""


def build_input(config):
  """(pipeline or MultiReader, source names, whether its batches are MultiReader-stacked)."""
  data = config.data
  sources = parse_sources(data.sources)
  common = dict(n_speakers=data.n_speakers, n_utterances=data.n_utterances, crop=data.crop,
                data_dir=data.data_dir or None, process_index=jax.process_index(),
                process_count=jax.process_count(), storage=data.storage,
                cache_dir=data.cache_dir or None)
  pipelines = {name: speaker_batches_lib.speaker_batches(
      tfds_name, "train", seed=config.seed + k, **common)
      for k, (name, tfds_name) in enumerate(sources.items())}
  if not data.weights:
    if len(pipelines) != 1:
      raise ValueError(f"config.data.sources names {len(pipelines)} sources: give "
                       "config.data.weights ('name:alpha,...') to combine them with MultiReader")
    (name, pipeline), = pipelines.items()
    return pipeline, (name,), False
  reader = multireader_lib.MultiReader(pipelines, data.weights, mode=data.mode, seed=config.seed)
  return reader, reader.names, data.mode == "stacked"


def write_run_info(config, workdir):
  versions = {"python": platform.python_version()}
  for package in PACKAGES:
    try:
      versions[package] = metadata.version(package)
    except metadata.PackageNotFoundError:
      pass
  checkpoint.write_config(workdir, config.to_dict())
  with open(os.path.join(workdir, "versions.json"), "w") as f:
    json.dump(versions, f, indent=2, sort_keys=True)


def train_and_evaluate(config, workdir: str):
  """Train per ``config`` in ``workdir``; returns the final train state and last eval."""
  workdir = os.path.abspath(workdir)
  is_chief = jax.process_index() == 0
  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    write_run_info(config, workdir)
  encoder_config = model.config_from_dict(dict(config.model))
  mesh = train.make_mesh()
  pipeline, source_names, stacked = build_input(config)
  speakers_for_softmax = None
  if config.loss.name == "softmax":
    if stacked or len(source_names) != 1:
      raise ValueError("the softmax baseline trains on one source (no MultiReader)")
    speakers_for_softmax = len(pipeline.speakers)

  optimizer = optim.make_optimizer(
      learning_rate=config.optimizer.learning_rate, decay_every=config.optimizer.decay_every,
      clip_norm=config.optimizer.clip_norm, projection_scale=config.optimizer.projection_scale,
      similarity_scale=config.optimizer.similarity_scale, kind=config.optimizer.kind)
  step_fn = train.make_train_step(encoder_config, optimizer, mesh, loss=config.loss.name,
                                  centroids=config.loss.centroids,
                                  reduction=config.loss.reduction, stacked=stacked)
  rng = jax.random.key(config.seed)
  params = train.init_params(jax.random.fold_in(rng, 0), encoder_config, speakers_for_softmax)
  state = train.replicate(train.init_state(params, optimizer), mesh)

  checkpointer = checkpoint.Checkpointer(workdir, keep_last=config.train.keep_last,
                                         keep_best=config.train.keep_best)
  restored = checkpointer.restore(state)
  start_step, train_seconds = 0, 0.0
  if restored is not None:
    start_step, state, position = restored
    if position["data_step"] != start_step or position["seed"] != config.seed:
      raise ValueError(f"checkpoint {start_step} in {workdir} was written for data step "
                       f"{position['data_step']} / seed {position['seed']}, not "
                       f"{start_step} / {config.seed}: is this the same run's workdir?")
    train_seconds = position["train_seconds"]
    logging.info("resumed from step %d in %s", start_step, checkpointer.directory)
  if restored is not None:
    rng = jax.random.wrap_key_data(np.asarray(position["rng"], np.uint32))

  evaluator = evaluation.HeldOutEvaluator(config, encoder_config) if config.eval.every else None
  reporter = Reporter(workdir, is_chief, start_step, config.train.num_steps,
                      config.data.n_speakers * config.data.n_utterances
                      * (len(source_names) if stacked else 1), source_names)
  shardings = train.batch_sharding(mesh, stacked)["speaker"]
  batches = pipeline.iterator(start_step)
  num_steps, last_eval = config.train.num_steps, None
  mark = time.perf_counter()
  try:
    for step in range(start_step + 1, num_steps + 1):
      batch = next(batches)
      source = batch.pop("source", None)
      state, metrics = step_fn(state, global_batch_lib.global_batch(batch, shardings), rng)
      streak = int(jax.device_get(state.nonfinite_streak))
      if streak >= config.train.max_nonfinite_streak:
        raise NonFiniteLossError(
            f"step {step}: {streak} consecutive steps had a non-finite loss or gradient "
            f"(limit config.train.max_nonfinite_streak={config.train.max_nonfinite_streak}); "
            f"params were left at their last finite values, last checkpoint is kept")
      reporter.count_step()
      if step % config.train.log_every == 0 or step == num_steps:
        reporter.train(step, jax.device_get(metrics), source,
                       int(jax.device_get(state.nonfinite_steps)))
      evaluate_now = evaluator is not None and (step % config.eval.every == 0 or step == num_steps)
      if evaluate_now or step % config.train.checkpoint_every == 0 or step == num_steps:
        train_seconds += time.perf_counter() - mark  # training time excludes eval and saving
        scores = None
        if evaluate_now:
          last_eval = evaluator(jax.device_get(state.params))
          scores = {"eer": last_eval["eer"], "min_dcf": last_eval["min_dcf"]}
          reporter.evaluation(step, train_seconds, last_eval, evaluator.description)
        position = {"data_step": step, "seed": config.seed, "train_seconds": train_seconds,
                    "rng": jax.random.key_data(rng).tolist()}
        checkpointer.save(step, state, position, metrics=scores, force=True)
        mark = time.perf_counter()
        reporter.restart_window()
  finally:  # an error must not abandon a checkpoint being written
    checkpointer.close()
    reporter.close()
  return state, last_eval


class Reporter:
  """Progress lines, TensorBoard summaries and ``eval_history.jsonl`` (the chief's job).

  Throughput is measured over the steps since the last report or evaluation/save.
  """

  def __init__(self, workdir: str, is_chief: bool, start_step: int, num_steps: int,
               utterances_per_step: int, source_names):
    self.num_steps, self.utterances_per_step = num_steps, utterances_per_step
    self.source_names = source_names
    self.writer = history = None
    if is_chief:
      self.writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
      history = EvalHistory(os.path.join(workdir, EVAL_HISTORY), start_step)
    self.history = history
    self.restart_window()
    logging.info("training steps %d..%d, %d utterances per step, %d devices in %d processes",
                 start_step, num_steps, utterances_per_step, jax.device_count(),
                 jax.process_count())

  def restart_window(self):
    self.window_start, self.window_steps = time.perf_counter(), 0

  def count_step(self):
    self.window_steps += 1

  def train(self, step: int, metrics: dict, sampled_source, nonfinite_steps: int):
    rate = self.window_steps / max(time.perf_counter() - self.window_start, 1e-9)
    per_source = _per_source(metrics, self.source_names, sampled_source)
    logging.info(
        "step %d/%d loss %.4f (mean %.4f)%s w %.3f b %.3f grad_norm %.3f | %.2f steps/s "
        "%.0f utt/s ETA %s | non-finite steps %d",
        step, self.num_steps, metrics["loss"], metrics["loss_mean"],
        "".join(f" {k} {v:.4f}" for k, v in per_source.items()), metrics["w"], metrics["b"],
        metrics["grad_norm"], rate, rate * self.utterances_per_step,
        _eta((self.num_steps - step) / max(rate, 1e-9)), nonfinite_steps)
    scalars = {f"train/{k}": metrics[k] for k in ("loss", "loss_mean", "w", "b", "grad_norm")}
    scalars.update({f"train/{k}": v for k, v in per_source.items()})
    scalars.update({"train/steps_per_s": rate,
                    "train/utterances_per_s": rate * self.utterances_per_step})
    self._summaries(step, scalars)
    self.restart_window()

  def evaluation(self, step: int, train_seconds: float, result: dict, description: str):
    logging.info("step %d eval on %s: EER %.2f%% minDCF %.4f (%d trials)", step, description,
                 100 * result["eer"], result["min_dcf"], result["trials"])
    self._summaries(step, {"eval/eer": result["eer"], "eval/min_dcf": result["min_dcf"]})
    if self.history is not None:
      self.history.append({"step": step, "train_seconds": train_seconds,
                           "eer": result["eer"], "min_dcf": result["min_dcf"]})

  def _summaries(self, step: int, scalars: dict):
    if self.writer is not None:
      with self.writer.as_default(step=step):
        for name, value in scalars.items():
          tf.summary.scalar(name, value)

  def close(self):
    if self.writer is not None:
      self.writer.flush()


class EvalHistory:
  """``eval_history.jsonl``: one line per evaluation (step, training seconds, EER, minDCF).

  Opened at ``start_step`` it drops lines of later steps, which a killed run wrote after
  its last checkpoint and the resumed run will write again.
  """

  def __init__(self, path: str, start_step: int):
    self.path = path
    kept = []
    if os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if json.loads(line)["step"] <= start_step]
    with open(path, "w") as f:
      f.writelines(kept)

  def append(self, record: dict):
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")


def read_eval_history(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, EVAL_HISTORY)) as f:
    return [json.loads(line) for line in f]


def _per_source(metrics, names, sampled_source):
  if "loss_per_source" in metrics:
    return {f"loss/{n}": float(v) for n, v in zip(names, metrics["loss_per_source"])}
  if sampled_source is not None:
    return {f"loss/{names[int(sampled_source)]}": float(metrics["loss"])}
  return {}


def _eta(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

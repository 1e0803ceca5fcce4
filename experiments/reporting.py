"""What a training run reports: progress lines, TensorBoard summaries, ``eval_history.jsonl``.

The chief process writes them; ``read_eval_history`` is how the ablations read a run's result.
"""

import json
import os
import time

import jax
import tensorflow as tf
from absl import logging

EVAL_HISTORY = "eval_history.jsonl"


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
    logging.info("step %d eval on %s: EER %.2f%%%s minDCF %.4f (%d trials)", step, description,
                 100 * result["eer"], _interval(result), result["min_dcf"], result["trials"])
    scalars = {"eval/eer": result["eer"], "eval/min_dcf": result["min_dcf"]}
    conditions = {name: {"eer": r["eer"], "min_dcf": r["min_dcf"],
                         **({"eer_ci95": r["eer_ci95"]} if "eer_ci95" in r else {})}
                  for name, r in result.get("conditions", {}).items()}
    for name, r in result.get("conditions", {}).items():
      logging.info("step %d eval on %s: EER %.2f%%%s minDCF %.4f (%d trials)", step, r["data"],
                   100 * r["eer"], _interval(r), r["min_dcf"], r["trials"])
      scalars.update({f"eval/{name}/eer": r["eer"], f"eval/{name}/min_dcf": r["min_dcf"]})
    self._summaries(step, scalars)
    if self.history is not None:
      record = {"step": step, "train_seconds": train_seconds,
                "eer": result["eer"], "min_dcf": result["min_dcf"],
                **({"eer_ci95": result["eer_ci95"]} if "eer_ci95" in result else {})}
      self.history.append(dict(record, conditions=conditions) if conditions else record)

  def _summaries(self, step: int, scalars: dict):
    if self.writer is not None:
      with self.writer.as_default(step=step):
        for name, value in scalars.items():
          tf.summary.scalar(name, value)

  def close(self):
    if self.writer is not None:
      self.writer.flush()


def _interval(result: dict) -> str:
  """" [low, high]" of the EER's 95 % interval in percent, "" when the result has none."""
  if "eer_ci95" not in result:
    return ""
  low, high = result["eer_ci95"]
  return f" [{100 * low:.2f}, {100 * high:.2f}]"


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

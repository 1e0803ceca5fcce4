"""The ablation scripts on tiny corpora: their tables, plot and JSON; the leak-free corpora
of the MultiReader ablation (train_speaker_limit, pooled_train_phrases) and their check."""

import dataclasses
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from experiments import ablation_common
from ge2e_jax import augment, checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, EVAL_EVERY = 4, 2
TARGET_SPEAKERS = 4  # the few-speaker target: the first 4 train speakers of synthetic_td_hey


def tiny_flags(data_dir):
  values = {"data.data_dir": data_dir, "data.n_speakers": 4, "data.n_utterances": 4,
            "model.cells": 16, "model.projection": 8, "train.log_every": 2,
            "eval.enroll": 2, "eval.max_utterances_per_speaker": 6, "eval.conditions": "",
            **{f"augment.{kind}.prob": 0.0 for kind in augment.KINDS}}  # td_demo augments
  return [f"--config.{k}={v}" for k, v in values.items()] + [
      f"--steps={STEPS}", f"--eval_every={EVAL_EVERY}"]


def start_script(logs, module, *args):
  """Runs ``module`` in the background, its stdout and stderr into files under ``logs``."""
  out, err = (open(logs / f"{module}.{kind}", "w+") for kind in ("stdout", "stderr"))
  proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdout=out,
                          stderr=err, env=dict(os.environ, PYTHONPATH=ROOT))
  return proc, out, err


def finish(run):
  """The script's stdout, once it has ended well."""
  proc, out, err = run
  proc.wait(timeout=300)
  out.seek(0)
  err.seek(0)
  assert proc.returncode == 0, err.read()[-3000:]
  return out.read()


def build(data_dir, config):
  tfds.builder("synthetic_voices", config=config, data_dir=data_dir).download_and_prepare()
  return f"synthetic_voices/{config.name}"


def examples(name, split, data_dir):
  ds = tfds.builder(name, data_dir=data_dir).as_dataset(split=split, shuffle_files=False)
  return {ex["utterance"].decode(): (ex["speaker"].decode(), ex["audio"].tobytes())
          for ex in ds.as_numpy_iterator()}


@pytest.fixture(scope="module")
def few_speaker_corpora(synthetic_td, synthetic_td_hey):
  """(target, pooled): "hey computer" by 4 train speakers; that plus synthetic_td's train."""
  data_dir = synthetic_td_hey.data_dir
  target = dataclasses.replace(synthetic_td_hey.config, name="test_td_hey_4",
                               train_speaker_limit=TARGET_SPEAKERS)
  pooled = dataclasses.replace(target, name="test_td_hey_4_pooled_ok",
                               pooled_train_phrases=(synthetic_td.config.phrase,))
  return build(data_dir, target), build(data_dir, pooled)


LOSSES = ["ge2e_contrast", "softmax"]  # a GE2E loss and the one with a speaker head
MULTIREADER_ARMS = ["multireader"]  # the stacked arm (one-source arms train as the loss arms do)


@pytest.fixture(scope="module")
def ablations(synthetic_td, few_speaker_corpora, tmp_path_factory):
  """The three ablation scripts, started side by side: {name: (workdir, process)}."""
  target, pooled = few_speaker_corpora
  tiny = tiny_flags(synthetic_td.data_dir)
  workdirs = {name: tmp_path_factory.mktemp(name) for name in ("loss", "multireader", "augment")}
  logs = tmp_path_factory.mktemp("logs")
  runs = {
      "loss": start_script(
          logs, "experiments.ablate_loss", f"--workdir={workdirs['loss']}",
          f"--losses={','.join(LOSSES)}", f"--config.data.sources.ok.corpus={synthetic_td.name}",
          *tiny),
      "multireader": start_script(
          logs, "experiments.ablate_multireader", f"--workdir={workdirs['multireader']}",
          f"--arms={','.join(MULTIREADER_ARMS)}", f"--target={target}",
          f"--aux={synthetic_td.name}", f"--pooled={pooled}", *tiny),
      "augment": start_script(
          logs, "experiments.ablate_augment", f"--workdir={workdirs['augment']}",
          "--speakers=procedural", "--arms=no_noise",
          "--conditions=test_unseen_lang+noise_snr5",
          f"--config.data.sources.ok.corpus={synthetic_td.name}", "--config.augment.noise.prob=0.5",
          *[f for f in tiny if "augment.noise.prob" not in f])}
  yield {name: (workdirs[name], run) for name, run in runs.items()}
  for proc, out, err in runs.values():
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    out.close()
    err.close()


def check_outputs(root, stem, arms):
  """The .md tables, .png plot and .json histories exist, name every arm and agree."""
  with open(os.path.join(root, f"{stem}.json")) as f:
    record = json.load(f)
  assert list(record["histories"]) == arms
  for history in record["histories"].values():
    assert [r["step"] for r in history] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    assert all(0 <= r["eer"] <= 1 and 0 <= r["min_dcf"] and r["train_seconds"] > 0
               for r in history)
    assert np.all(np.diff([r["train_seconds"] for r in history]) > 0)
  with open(os.path.join(root, f"{stem}.md")) as f:
    tables = f.read()
  for arm, history in record["histories"].items():
    assert f"| {arm} | {100 * history[-1]['eer']:.2f}% |" in tables  # summary row
  assert f"| {STEPS} | " in tables and f"| {EVAL_EVERY} | " in tables  # per-step rows
  import matplotlib.image  # pylint: disable=g-import-not-at-top
  image = matplotlib.image.imread(os.path.join(root, f"{stem}.png"))
  assert image.ndim == 3 and image.shape[1] > image.shape[0] > 100  # two panels side by side
  return record


@pytest.mark.slow
def test_ablate_loss_writes_tables_plot_json_and_reuses_runs(ablations):
  workdir, proc = ablations["loss"]
  stdout = finish(proc)
  record = check_outputs(workdir, "loss_ablation", LOSSES)
  assert "| ge2e_contrast |" in stdout
  assert [checkpoint.read_config(workdir / loss)["loss"]["name"] for loss in LOSSES] == LOSSES

  # Rerun: the finished arm is reused as is; another config in its workdir is refused.
  config = ml_collections.ConfigDict(checkpoint.read_config(workdir / "softmax"))
  assert ablation_common.run_arm(config, workdir / "softmax") == record["histories"]["softmax"]
  config.seed = 1
  with pytest.raises(ValueError, match=r"another config.*seed"):
    ablation_common.run_arm(config, workdir / "softmax")


@pytest.mark.slow
def test_ablate_multireader_writes_tables_plot_json(ablations, few_speaker_corpora,
                                                    synthetic_td):
  workdir, proc = ablations["multireader"]
  stdout = finish(proc)
  record = check_outputs(workdir, "multireader_ablation", MULTIREADER_ARMS)
  assert record["corpora"]["target_train_speakers"] == TARGET_SPEAKERS
  assert record["arm_sources"]["multireader"]["sources"] == {
      "target": {"corpus": few_speaker_corpora[0], "weight": 1.0},
      "aux": {"corpus": synthetic_td.name, "weight": 0.5}}
  assert "| multireader |" in stdout


def test_limited_and_pooled_corpora_hold_exactly_the_source_audio(few_speaker_corpora,
                                                                  synthetic_td,
                                                                  synthetic_td_hey):
  target, pooled = few_speaker_corpora
  data_dir = synthetic_td.data_dir
  hey_train = examples(synthetic_td_hey.name, "train", data_dir)
  hey_test = examples(synthetic_td_hey.name, "test", data_dir)
  ok_train = examples(synthetic_td.name, "train", data_dir)
  # The first train speakers of the seeded list, as the full corpus's build report has it.
  first = [s["id"] for s in common.read_report(synthetic_td_hey.builder())["speakers"]
           if s["split"] == "train"][:TARGET_SPEAKERS]
  expected_target = {u: v for u, v in hey_train.items() if v[0] in first}
  assert len(expected_target) == TARGET_SPEAKERS * synthetic_td_hey.config.utterances_per_speaker
  assert examples(target, "train", data_dir) == expected_target
  assert examples(target, "test", data_dir) == hey_test  # the same held-out speakers
  pooled_train = examples(pooled, "train", data_dir)
  ok_part = {u.replace("/ok_computer/", "/"): v for u, v in pooled_train.items()
             if "/ok_computer/" in u}
  assert ok_part == ok_train
  assert {u: v for u, v in pooled_train.items() if "/ok_computer/" not in u} == expected_target
  assert examples(pooled, "test", data_dir) == hey_test


def test_check_pooled_corpora_accepts_these_and_refuses_a_leaky_source(few_speaker_corpora,
                                                                      synthetic_td,
                                                                      synthetic_td_hey):
  target, pooled = few_speaker_corpora
  data_dir = synthetic_td.data_dir
  facts = ablation_common.check_pooled_corpora(target, synthetic_td.name, pooled, data_dir)
  per = synthetic_td.config.utterances_per_speaker
  assert facts["pooled_train_utterances"] == (TARGET_SPEAKERS + 10) * per
  assert facts["eval_speakers"] == 4 and facts["target_voices_also_in_aux_train"] == 4
  # The trap the config field avoids: more train speakers on the shared seeded list reach
  # into the 4 test speakers of the target.
  leaky = build(data_dir, dataclasses.replace(
      synthetic_td.config, name="test_td_ok_12_train", num_train_speakers=12,
      num_test_speakers=2, utterances_per_speaker=2))
  with pytest.raises(ValueError, match=f"2 evaluation speakers .* are in {leaky}:train"):
    ablation_common.check_pooled_corpora(target, leaky, pooled, data_dir)
  with pytest.raises(ValueError, match="is not exactly the audio"):
    ablation_common.check_pooled_corpora(synthetic_td_hey.name, synthetic_td.name, pooled,
                                         data_dir)


@pytest.mark.slow
def test_ablate_augment_switches_kinds_off_and_scores_the_named_corpus(synthetic_td, ablations):
  tmp_path, proc = ablations["augment"]
  stdout = finish(proc)
  record = check_outputs(tmp_path, "augment_ablation", ["procedural-no_noise"])
  condition = f"{synthetic_td.name}:test_unseen_lang+noise_snr5"
  for history in record["histories"].values():
    assert 0 <= history[-1]["conditions"][condition]["eer"] <= 1
  assert f"| arm | final EER | {condition} |" in stdout
  probs = {arm: {k: v["prob"] for k, v in checkpoint.read_config(tmp_path / arm)["augment"]
                 .items()} for arm in record["histories"]}
  assert probs == {"procedural-no_noise": {k: 0.0 for k in augment.KINDS}}  # base noise: 0.5

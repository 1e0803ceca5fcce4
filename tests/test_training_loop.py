"""The training job end to end on a tiny config: kill-and-resume identity (with every kind of
augmentation on), corrupt-checkpoint fallback, non-finite losses, evaluation and the CLIs.

One uninterrupted run is the reference; one other run is interrupted by SIGTERM and a
damaged step in turn; the refused restarts run side by side. A two-process run is preempted,
loses a process (SIGKILL) and resumes, beside its own uninterrupted reference."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from experiments import training_loop
from ge2e_jax import augment, checkpoint, model_card

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 12
NO_EVAL = {"eval.every": 0}  # runs whose checks need no held-out evaluation


def overrides(corpus, **extra):
  """--config.* flags: a tiny model and batch over the session's synthetic td corpus."""
  values = {
      "data.sources.ok.corpus": corpus.name, "data.data_dir": corpus.data_dir,
      "data.n_speakers": 4, "data.n_utterances": 4,
      "model.cells": 16, "model.projection": 8,
      "train.num_steps": STEPS, "train.log_every": 2, "train.checkpoint_every": 2,
      "train.keep_last": 2,
      "eval.every": 6, "eval.enroll": 2, "eval.max_utterances_per_speaker": 6,
      "eval.conditions": "",
      # Augmentation on: resume must stay bit-identical with it (small banks: quick start).
      **{f"augment.{kind}.prob": 0.5 for kind in augment.KINDS},
      "augment.reverb.bank_size": 8, "augment.noise.bank_seconds": 2.0,
  }
  values.update(extra)
  return [f"--config.{k}={v}" for k, v in values.items()]


def train_command(workdir, corpus, **extra):
  return [sys.executable, "-m", "experiments.train",
          f"--config={ROOT}/experiments/configs/td_demo.py", f"--workdir={workdir}",
          *overrides(corpus, **extra)]


def run(cmd, timeout=300):
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, PYTHONPATH=ROOT))
  return proc


def run_side_by_side(cmds, timeout=300) -> list:
  """Runs the commands at once (their starts overlap); [(status, stdout, stderr)] in order."""
  procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=ROOT)) for cmd in cmds]
  results = []
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=timeout)
    results.append((proc.returncode, stdout, stderr))
  return results


def final_params(workdir):
  step, params = checkpoint.restore_params(workdir, which="latest")
  assert step == STEPS
  return {k: np.asarray(v) for k, v in _flatten(params)}


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _flatten(value, f"{prefix}/{key}")
  else:
    yield prefix, tree


def complete_steps(workdir):
  directory = os.path.join(workdir, checkpoint.CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


@pytest.fixture(scope="module")
def uninterrupted_started(tmp_path_factory, synthetic_td):
  """The reference run, started in the background (the interrupted run, first in this file,
  works beside it): (workdir, process, its stderr file)."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  log = tmp_path_factory.mktemp("logs") / "uninterrupted.log"
  with open(log, "w") as stderr:
    proc = subprocess.Popen(train_command(workdir, synthetic_td), cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                            stderr=stderr)
  yield workdir, proc, log
  if proc.poll() is None:
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_started):
  """The finished reference run: (workdir, its stderr)."""
  workdir, proc, log = uninterrupted_started
  proc.wait(timeout=300)
  assert proc.returncode == 0, log.read_text()[-3000:]
  return workdir, log.read_text()


def _start_and_signal(cmd, workdir, signals):
  """Starts ``cmd``, waits for its step-2 checkpoint, sends ``signals`` (0.05 s apart)."""
  proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not [s for s in complete_steps(workdir) if s >= 2] and proc.poll() is None:
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)
  for sig in signals:
    proc.send_signal(sig)
    time.sleep(0.05)
  _, stderr = proc.communicate(timeout=240)
  return proc.returncode, stderr


def _damage(step_dir) -> int:
  """Truncates every file of a checkpoint step that holds data; how many it truncated."""
  damaged = 0
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      if os.path.getsize(path) > 64:
        with open(path, "r+b") as f:
          f.truncate(16)
        damaged += 1
  return damaged


@pytest.mark.slow
def test_sigterm_and_a_corrupt_step_in_one_run_end_bit_identical(
    uninterrupted_started, synthetic_td, tmp_path, request):
  """One run interrupted twice, each restart resuming where it can: SIGTERM (saves the
  current step, exits 0), then its newest step truncated (set aside, the one before
  restored). Every restart replays the same batches, so the run ends where the
  uninterrupted one does. (A SIGKILLed process's complete steps: the two-process chain and
  the second-SIGTERM test below.)"""
  workdir = tmp_path / "interrupted"
  # A checkpoint every step: two complete ones, whenever SIGTERM arrives.
  cmd = train_command(workdir, synthetic_td, **{"train.checkpoint_every": 1})
  returncode, stderr = _start_and_signal(cmd, workdir, [signal.SIGTERM])
  assert returncode == 0, stderr[-3000:]
  stopped = max(complete_steps(workdir))
  assert stopped < STEPS, stderr[-2000:]  # really stopped early
  assert (f"train: SIGTERM received: saved step {stopped} in {workdir / 'checkpoints'} and "
          "stopped") in stderr

  kept = complete_steps(workdir)
  assert len(kept) >= 2 and kept[-1] == stopped, kept
  assert _damage(workdir / "checkpoints" / str(stopped))
  resumed = run(cmd)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"checkpoints/{stopped} is unreadable" in resumed.stderr
  assert f"resumed from step {kept[-2]}" in resumed.stderr
  aside = [d for d in os.listdir(os.path.join(workdir, "checkpoints")) if ".corrupt-" in d]
  assert len(aside) == 1  # kept for inspection, not deleted
  history = [json.loads(line) for line in open(workdir / "eval_history.jsonl")]
  assert [h["step"] for h in history] == [6, 12]  # no duplicates from the interrupted run
  reference, _ = request.getfixturevalue("uninterrupted")  # waits for the reference run
  want, got = final_params(reference), final_params(workdir)
  assert want.keys() == got.keys()
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.slow
def test_run_logs_progress_writes_config_and_keeps_best(uninterrupted):
  workdir, log = uninterrupted
  for field in ("loss", "w ", "b ", "grad_norm", "steps/s", "utt/s", "ETA"):
    assert field in log
  assert "eval on" in log and "EER" in log and "minDCF" in log
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["model"]["cells"] == 16 and config["train"]["num_steps"] == STEPS
  assert config["augment"]["noise"]["prob"] == 0.5
  versions = json.load(open(os.path.join(workdir, "versions.json")))
  assert "jax" in versions and "tensorflow-datasets" in versions
  # last 2 steps kept (keep_last=2) plus the better of the two evaluated steps (6, 12).
  kept = complete_steps(workdir)
  assert kept[-2:] == [10, 12] and len(kept) in (2, 3)
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  history = [json.loads(line) for line in open(os.path.join(workdir, "eval_history.jsonl"))]
  assert [h["step"] for h in history] == [6, 12]
  assert 0 < history[0]["train_seconds"] < history[1]["train_seconds"]
  card = model_card.read(workdir)  # one operating point per evaluated step
  assert [(e["step"], e["operating_point"], e["eer"]) for e in card["evaluations"]] == [
      (h["step"], True, h["eer"]) for h in history]
  assert card["training"]["num_steps"] == STEPS and card["model"]["window_frames"] == 80
  assert model_card.operating_point(card, 12)["far_threshold"] is not None


@pytest.mark.slow
def test_diverging_run_stops_with_a_clear_error_and_saves_only_finite_state(synthetic_td,
                                                                            tmp_path):
  workdir = tmp_path / "diverge"
  proc = run(train_command(workdir, synthetic_td, **{
      "optimizer.learning_rate": 1e30, "train.max_nonfinite_streak": 3, **NO_EVAL}))
  assert proc.returncode != 0
  assert "consecutive steps had a non-finite loss or gradient" in proc.stderr
  assert complete_steps(workdir)  # the steps before the divergence were saved ...
  _, params = checkpoint.restore_params(workdir, "latest")
  for key, value in _flatten(params):  # ... and hold only finite values
    assert np.all(np.isfinite(value)), key


@pytest.fixture(scope="module")
def refused_resumes(uninterrupted, synthetic_td, tmp_path_factory):
  """Copies of the finished run restarted with another config, both at once:
  {case: (workdir, its config.json or None, its checkpoint steps, (status, stdout, stderr))}.
  "changed": model, loss and seed changed; "lost": config.json deleted, learning rate changed."""
  runs, cases = {}, []
  for case, changes in (("changed", {"model.cells": 32, "loss.name": "softmax", "seed": 1}),
                        ("lost", {"optimizer.learning_rate": 0.5})):
    workdir = tmp_path_factory.mktemp(case) / "run"
    shutil.copytree(uninterrupted[0], workdir)
    if case == "lost":
      os.remove(workdir / "config.json")
    config_json = (workdir / "config.json").read_bytes() if case == "changed" else None
    runs[case] = workdir, config_json, sorted(os.listdir(workdir / "checkpoints"))
    cases.append(train_command(workdir, synthetic_td, **changes,
                               **{"train.num_steps": STEPS + 2}))
  results = run_side_by_side(cases)
  return {case: (*runs[case], result) for case, result in zip(runs, results)}


@pytest.mark.slow
def test_changed_config_is_refused_in_one_line_and_the_run_is_untouched(refused_resumes):
  workdir, config_json, steps, (code, _, stderr) = refused_resumes["changed"]
  assert code == 1
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("train: ") and "holds checkpoints of a run with another config" in last
  for change in ("loss.name: 'ge2e_softmax' -> 'softmax'", "model.cells: 16 -> 32",
                 "seed: 0 -> 1"):
    assert change in last, last
  assert "Traceback" not in stderr and "Event loop is closed" not in stderr
  assert (workdir / "config.json").read_bytes() == config_json
  assert sorted(os.listdir(workdir / "checkpoints")) == steps


def test_train_cli_says_one_line_for_bad_config_input_and_writes_nothing(tmp_path):
  nowhere = types.SimpleNamespace(name="synthetic_voices/none", data_dir=os.fspath(tmp_path))
  workdir = tmp_path / "run"
  unknown, bad = run_side_by_side([
      train_command(workdir, nowhere) + ["--config.train.nonexistent=1"],
      train_command(workdir, nowhere, **{
          "train.num_steps": 0, "train.log_every": 0, "train.checkpoint_every": 0})],
      timeout=120)
  assert (unknown[0], bad[0]) == (2, 1)  # a flag error; a config value
  assert "--config.train.nonexistent=1: config.train has no field 'nonexistent'" in unknown[2]
  last = bad[2].strip().splitlines()[-1]
  assert last.startswith("train: config.train.num_steps=0: expected an integer >= 1; "), last
  assert "config.train.log_every=0" in last and "config.train.checkpoint_every=0" in last
  assert "Traceback" not in unknown[2] + bad[2]
  assert not workdir.exists()


@pytest.mark.slow
def test_evaluate_cli_writes_summary_and_plots(uninterrupted, tmp_path):
  workdir, _ = uninterrupted
  out = tmp_path / "eval"
  proc = run([sys.executable, "-m", "experiments.evaluate", f"--model={workdir}",
              f"--output_dir={out}", "--num_enroll=2"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("EER ") and "minDCF" in proc.stdout
  summary = json.load(open(out / "eval.json"))
  assert 0.0 <= summary["eer"] <= 1.0 and summary["trials"] > summary["target_trials"] > 0
  for png in ("det.png", "embeddings_2d.png"):
    assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  entry = model_card.read(workdir)["evaluations"][-1]  # recorded, not the operating point
  assert entry["condition"].startswith("held-out corpus") and not entry["operating_point"]
  assert entry["eer"] == summary["eer"] and entry["far_threshold"] == summary["far_threshold"]
  proc = run([sys.executable, "-m", "experiments.evaluate", f"--model={workdir}", "--noplots",
              "--num_enroll=2", "--window_rule=overlap_padded"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.load(open(workdir / "eval+overlap_padded" / "eval.json"))
  entry = model_card.read(workdir)["evaluations"][-1]
  assert summary["window_rule"] == "overlap_padded" and entry["eer"] == summary["eer"]
  assert entry["condition"].endswith(", window_rule=overlap_padded")


@pytest.mark.slow
def test_a_lost_config_json_does_not_let_another_config_resume(refused_resumes):
  workdir, _, steps, (code, _, stderr) = refused_resumes["lost"]
  assert code == 1
  last = stderr.strip().splitlines()[-1]
  assert last.startswith("train: ") and (
      f"(the config stored in its checkpoint step {STEPS}): optimizer.learning_rate") in last
  assert "Traceback" not in stderr
  assert not (workdir / "config.json").exists()
  assert sorted(os.listdir(workdir / "checkpoints")) == steps


@pytest.mark.slow
def test_a_second_sigterm_ends_the_run_at_once_and_the_last_step_stays_usable(
    synthetic_td, tmp_path):
  workdir = tmp_path / "twice"
  returncode, _ = _start_and_signal(train_command(workdir, synthetic_td, **NO_EVAL),
                                    workdir, [signal.SIGTERM, signal.SIGTERM])
  steps = complete_steps(workdir)
  assert steps and max(steps) < STEPS
  ck = checkpoint.Checkpointer(os.fspath(workdir), read_only=True)
  try:  # the newest complete step restores and verifies
    assert ck.restore_params("latest")[0] == max(steps)
  finally:
    ck.close()
  assert returncode in (0, -signal.SIGTERM)  # killed, or done before the second arrived


@pytest.mark.slow
def test_a_full_disk_stops_training_in_one_line_and_keeps_the_earlier_steps(synthetic_td,
                                                                            small_disk):
  workdir = small_disk("1m") / "run"
  proc = run(train_command(workdir, synthetic_td, **{
      "train.num_steps": 400, "train.checkpoint_every": 1, "train.keep_last": 1000,
      "train.log_every": 50, **NO_EVAL}))
  assert proc.returncode == 1, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("train: ") and (
      "no space left on device" in last and "are intact" in last), proc.stderr[-3000:]
  # Nor the aborted save's tensorstore callbacks reporting its closed event loop.
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  steps = complete_steps(workdir)
  assert len(steps) > 2 and max(steps) < 400
  assert checkpoint.restore_params(os.fspath(workdir), "latest")[0] == max(steps)


def test_a_full_disk_met_again_while_closing_is_reported_as_the_checkpoint_save_that_met_it():
  """The TensorBoard writer's flush in the loop's ``finally`` can meet the full disk after
  a save did and replace the save's error: the save's one line (naming the intact steps)
  is the one reported."""
  save = checkpoint.CheckpointWriteError("saving a checkpoint in w failed: no space left on "
                                         "device (x); the complete steps [3, 4] are intact")
  try:
    try:
      raise save
    finally:
      raise RuntimeError("FlushSummaryWriter: w/tensorboard/events; No space left on device")
  except RuntimeError as flush:
    assert training_loop.disk_full_report(flush, "w") == str(save)
    alone = training_loop.disk_full_report(RuntimeError(str(flush)), "w")
  assert alone.startswith("writing the run's logs in w failed: no space left on device") and (
      "are intact" in alone)
  assert training_loop.disk_full_report(ValueError("bad value"), "w") is None


def _two_processes(workdir, corpus, tmp_path, tag, **extra):
  """Starts the 2 processes of a jax.distributed CPU run (1 device each) of the tiny run."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, PYTHONPATH=ROOT, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return [subprocess.Popen(train_command(workdir, corpus, **NO_EVAL, **{
      "train.num_steps": TWO_PROCESS_STEPS, **extra}) + [
      f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={rank}",
      f"--heartbeat_timeout_s={HEARTBEAT_S}"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
      stderr=open(tmp_path / f"{tag}{rank}.log", "w")) for rank in (0, 1)]


HEARTBEAT_S = 5
# JAX's preemption service agrees on the step to save a few steps after the notice: room
# for it, and for a lost process after the resumed run's first checkpoint.
TWO_PROCESS_STEPS = 40
LAST_STEP_ONLY = {"train.checkpoint_every": TWO_PROCESS_STEPS}  # where no step is interrupted


def _wait_for_step(workdir, procs, step):
  deadline = time.time() + 300
  while not [s for s in complete_steps(workdir) if s >= step] and procs[0].poll() is None:
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.05)


def _final_state_hashes(workdir):
  """The final step's sha256 of every state array (this single process cannot restore a
  2-process checkpoint: orbax refuses the other topology): equal hashes, equal bits."""
  return json.loads((workdir / "checkpoints" / str(TWO_PROCESS_STEPS) / checkpoint.CHECKSUMS /
                     "metadata").read_text())["state"]


@pytest.mark.slow
def test_a_preempted_then_lost_process_and_both_resume_bit_identical(synthetic_td, tmp_path):
  whole = tmp_path / "whole"  # the reference, side by side with the interrupted run
  whole_procs = _two_processes(whole, synthetic_td, tmp_path, "whole", **LAST_STEP_ONLY)
  workdir = tmp_path / "interrupted"
  procs = []
  try:
    # One host preempted (SIGTERM to one process only): JAX's preemption service makes
    # both save the same step and exit 0.
    procs = _two_processes(workdir, synthetic_td, tmp_path, "preempted")
    _wait_for_step(workdir, procs, 4)
    procs[1].send_signal(signal.SIGTERM)
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    saved = [(tmp_path / f"preempted{rank}.log").read_text().strip().splitlines()[-1]
             for rank in (0, 1)]
    assert saved[0] == saved[1] and saved[0].startswith(
        "train: preemption notice received: saved step"), saved
    preempted_at = max(complete_steps(workdir))
    assert preempted_at < TWO_PROCESS_STEPS - 2

    # The same command resumes on both; then one host is lost (SIGKILL): the other stops
    # within the heartbeat timeout instead of hanging in a collective.
    procs = _two_processes(workdir, synthetic_td, tmp_path, "killed")
    _wait_for_step(workdir, procs, preempted_at + 1)
    procs[1].send_signal(signal.SIGKILL)
    start = time.time()
    returncode = procs[0].wait(timeout=HEARTBEAT_S * 12)
    took = time.time() - start
    log = (tmp_path / "killed0.log").read_text()
    assert f"resumed from step {preempted_at}" in log
    assert returncode != 0 and took < HEARTBEAT_S * 6, (returncode, took, log[-3000:])
    assert ("train: process 0 of 2 lost another process" in log
            or "JAX distributed service detected fatal errors" in log), log[-3000:]
    assert preempted_at < max(complete_steps(workdir)) < TWO_PROCESS_STEPS
    for proc in whole_procs:
      assert proc.wait(timeout=400) == 0, (tmp_path / "whole0.log").read_text()[-3000:]
  finally:  # nothing left running when a check fails
    for proc in whole_procs + procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()

  # Restarted once more (saving less often: a setting a resume may change), both end on
  # the uninterrupted run's bits.
  for proc in _two_processes(workdir, synthetic_td, tmp_path, "resumed", **LAST_STEP_ONLY):
    assert proc.wait(timeout=400) == 0, (tmp_path / "resumed0.log").read_text()[-3000:]
  assert "resumed from step" in (tmp_path / "resumed0.log").read_text()
  want = _final_state_hashes(whole)
  assert len(want) > 5 and _final_state_hashes(workdir) == want

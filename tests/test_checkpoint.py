"""Checkpoints that verify themselves, on real orbax files: a few bytes overwritten inside a
data file, a garbled metrics file, every step damaged, another model's checkpoint; training
(``Checkpointer.restore``) and loading (``restore_params``, ``inference.load``, the evaluate
CLI) fall back alike."""

import logging
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ge2e_jax import checkpoint, inference, model, optim, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.EncoderConfig(cells=16, projection=8)


def make_state(config, offset):
  """A TrainState of ``config``'s shapes holding seeded random params (no flax init: fast)."""
  shapes = jax.eval_shape(lambda: train_step.init_params(jax.random.key(0), config))
  rng = np.random.default_rng(offset)
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)
  return train_step.init_state(params, optim.make_optimizer())


def host(tree) -> dict:
  """{leaf path: float64 numpy copy}: the reference the restored values are compared to."""
  return {jax.tree_util.keystr(p): np.asarray(x, np.float64)
          for p, x in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def states():
  return {1: make_state(CONFIG, 0), 2: make_state(CONFIG, 1)}


@pytest.fixture(scope="module")
def template(tmp_path_factory, states):
  """A workdir as a run leaves it: config.json and steps 1 and 2, saved asynchronously."""
  path = tmp_path_factory.mktemp("template")
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(CONFIG), "seed": 0})
  ck = checkpoint.Checkpointer(os.fspath(path))
  for step, state in states.items():
    ck.save(step, state, {"data_step": step, "seed": 0}, metrics={"eer": 0.5 / step})
  ck.close()
  return path


@pytest.fixture
def workdir(template, tmp_path):
  path = tmp_path / "run"
  shutil.copytree(template, path)
  return path


def step_dir(workdir, step):
  return workdir / checkpoint.CHECKPOINT_DIR / str(step)


def overwrite_inside(workdir, step):
  """64 bytes overwritten in the middle of the step's largest array data file, size unchanged."""
  files = [os.path.join(root, name) for root, _, names in os.walk(step_dir(workdir, step) / "state")
           for name in names]
  path = max(files, key=os.path.getsize)
  size = os.path.getsize(path)
  assert size > 1000
  with open(path, "r+b") as f:
    f.seek(size // 2)
    f.write(b"\xff" * 64)
  assert os.path.getsize(path) == size


def listing(workdir):
  return sorted(os.listdir(workdir / checkpoint.CHECKPOINT_DIR))


def assert_params_equal(got, state):
  want = host(state.params)
  got = host(got)
  assert got.keys() == want.keys()
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_async_saves_carry_checksums_and_restore_verified(workdir, states):
  for step in (1, 2):
    assert (step_dir(workdir, step) / checkpoint.CHECKSUMS).is_dir()
    assert (step_dir(workdir, step) / checkpoint.FILE_CHECKSUMS).is_file()
  step, params = checkpoint.restore_params(workdir, "latest")
  assert step == 2
  assert_params_equal(params, states[2])
  assert checkpoint.restore_params(workdir, "best")[0] == 2  # eer 0.25 < 0.5


def test_overwritten_bytes_are_refused_and_the_step_before_is_used_everywhere(
    workdir, states, caplog):
  overwrite_inside(workdir, 2)
  with caplog.at_level(logging.ERROR, logger="ge2e_jax.checkpoint"):
    step, params = checkpoint.restore_params(workdir, "latest")
  assert step == 1
  assert_params_equal(params, states[1])
  assert "checkpoints/2 is unreadable" in caplog.text and "using step 1" in caplog.text
  assert "differ from their checksums" in caplog.text
  assert listing(workdir) == ["1", "2"]  # a reader moves nothing

  embedder = inference.load(workdir, "best")  # best (step 2) is damaged: the same fallback
  assert embedder.source.endswith("(step 1)")

  ck = checkpoint.Checkpointer(os.fspath(workdir))
  with caplog.at_level(logging.ERROR, logger="ge2e_jax.checkpoint"):
    step, state, data = ck.restore(make_state(CONFIG, 0))
  ck.close()
  assert (step, data) == (1, {"data_step": 1, "seed": 0})
  assert_params_equal(state.params, states[1])
  assert "resuming from step 1" in caplog.text
  assert listing(workdir)[0] == "1" and listing(workdir)[1].startswith("2.corrupt-")


def test_restored_values_are_checked_against_the_saved_array_checksums(workdir, states, caplog):
  """Without the per-file record (a run killed right after the save) the values still are."""
  overwrite_inside(workdir, 2)
  os.remove(step_dir(workdir, 2) / checkpoint.FILE_CHECKSUMS)
  with caplog.at_level(logging.ERROR, logger="ge2e_jax.checkpoint"):
    step, params = checkpoint.restore_params(workdir, "latest")
  assert step == 1
  assert_params_equal(params, states[1])
  assert "checksum mismatch in ['params/encoder/" in caplog.text


def test_garbled_metrics_file_is_set_aside_like_other_damage(workdir, states, caplog):
  (step_dir(workdir, 2) / "metrics" / "metrics").write_text('{"eer": 0.2')
  assert checkpoint.restore_params(workdir, "best")[0] == 1
  ck = checkpoint.Checkpointer(os.fspath(workdir))  # opening must not fail
  with caplog.at_level(logging.ERROR, logger="ge2e_jax.checkpoint"):
    step, state, _ = ck.restore(make_state(CONFIG, 0))
  assert step == 1 and "metrics file: JSONDecodeError" in caplog.text
  ck.save(3, states[2], {"data_step": 3, "seed": 0})  # and the run goes on
  ck.close()
  kept = listing(workdir)
  assert kept[0] == "1" and kept[1].startswith("2.corrupt-") and kept[2] == "3"
  assert checkpoint.restore_params(workdir, "latest")[0] == 3


def test_no_usable_checkpoint_stops_unless_a_fresh_start_is_allowed(workdir):
  overwrite_inside(workdir, 1)
  overwrite_inside(workdir, 2)
  before = listing(workdir)
  ck = checkpoint.Checkpointer(os.fspath(workdir))
  with pytest.raises(checkpoint.NoUsableCheckpointError,
                     match=r"no usable checkpoint \(step 1: .*step 2: .*nothing was moved.*"
                           r"allow_fresh_start"):
    ck.restore(make_state(CONFIG, 0))
  assert listing(workdir) == before
  with pytest.raises(checkpoint.NoUsableCheckpointError):
    checkpoint.restore_params(workdir)
  assert ck.restore(make_state(CONFIG, 0), allow_fresh_start=True) is None
  ck.close()
  assert [e.split(".")[0] for e in listing(workdir)] == ["1", "2"]
  assert all(".corrupt-" in e for e in listing(workdir))
  ck = checkpoint.Checkpointer(os.fspath(workdir))  # only set-aside steps: still not silent
  with pytest.raises(checkpoint.NoUsableCheckpointError, match="only"):
    ck.restore(make_state(CONFIG, 0))
  ck.close()


def test_checkpoint_of_another_model_is_refused_and_left_untouched(workdir):
  ck = checkpoint.Checkpointer(os.fspath(workdir))
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"checkpoints/2 was written for another model or optimizer .*"
                           r"params/encoder/lstmp_0/bias saved \(\(64,\), 'float32'\), this "
                           r"config \(\(128,\), 'float32'\)"):
    ck.restore(make_state(model.EncoderConfig(cells=32, projection=8), 0))
  ck.close()
  assert listing(workdir) == ["1", "2"]


def test_evaluate_cli_names_a_workdir_without_a_usable_checkpoint(workdir):
  overwrite_inside(workdir, 1)
  overwrite_inside(workdir, 2)
  proc = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--model={workdir}",
                         "--tfds_name=unused"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("evaluate: ") and "holds no usable checkpoint" in last, proc.stderr
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  assert listing(workdir) == ["1", "2"]



def strip_checksums(workdir, step):
  """A step as written before checksums existed: no checksums item, no file record."""
  shutil.rmtree(step_dir(workdir, step) / checkpoint.CHECKSUMS)
  os.remove(step_dir(workdir, step) / checkpoint.FILE_CHECKSUMS)


def test_a_step_without_checksums_is_not_trained_on_unless_allowed(workdir, states):
  strip_checksums(workdir, 2)
  ck = checkpoint.Checkpointer(os.fspath(workdir))
  with pytest.raises(checkpoint.UnverifiedCheckpointError,
                     match=r"checkpoints/2 has no checksums .*nothing was changed.*"
                           r"allow_unverified_checkpoint=True"):
    ck.restore(make_state(CONFIG, 0))
  assert listing(workdir) == ["1", "2"]
  step, state, _ = ck.restore(make_state(CONFIG, 0), allow_unverified=True)
  ck.close()
  assert step == 2
  for key, value in host(states[2]).items():
    np.testing.assert_array_equal(host(state)[key], value, err_msg=key)
  assert checkpoint.restore_params(workdir, "latest")[0] == 2  # readers: a warning, as before


def test_an_unverified_step_with_non_finite_values_is_set_aside(workdir, states, caplog):
  """Step 3 written as before checksums existed (plain orbax, state and data only), NaN."""
  nan_state = states[2].replace(params=jax.tree.map(lambda x: np.full_like(x, np.nan),
                                                    states[2].params))
  manager = ocp.CheckpointManager(os.fspath(workdir / checkpoint.CHECKPOINT_DIR),
                                  item_names=("state", "data"))
  manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(nan_state),
                                          data=ocp.args.JsonSave({"data_step": 3, "seed": 0})))
  manager.wait_until_finished()
  manager.close()
  ck = checkpoint.Checkpointer(os.fspath(workdir))
  with caplog.at_level(logging.ERROR):
    step, _, _ = ck.restore(make_state(CONFIG, 0), allow_unverified=True)
  ck.close()
  assert step == 2 and "checkpoints/3 is unreadable (no checksums, and non-finite values in " \
      "['params/" in caplog.text, caplog.text
  assert listing(workdir)[2].startswith("3.corrupt-")


def test_each_step_keeps_the_run_config_and_the_newest_intact_copy_is_read(tmp_path, states):
  ck = checkpoint.Checkpointer(os.fspath(tmp_path))
  for step, lr in ((1, 0.1), (2, 0.2)):
    ck.save(step, states[step], {"data_step": step, "seed": 0, "config": {"lr": lr}})
  ck.close()
  assert checkpoint.step_config(os.fspath(tmp_path)) == (2, {"lr": 0.2})
  (step_dir(tmp_path, 2) / "data" / "metadata").write_text('{"config": {"lr": 9}}')
  assert checkpoint.step_config(os.fspath(tmp_path)) == (1, {"lr": 0.1})
  assert checkpoint.step_config(os.fspath(tmp_path / "nowhere")) is None

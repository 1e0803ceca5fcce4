"""A checkpoint save that fills the disk (a 3 MB tmpfs as the workdir; needs root and
mount) fails with one error naming the complete steps, and every one of them stays usable."""

import os

import jax
import numpy as np
import pytest

from ge2e_jax import checkpoint, model, optim, train_step

CONFIG = model.EncoderConfig(cells=64, projection=16)  # ~140 kB of state: ~30 steps fit


def make_state(seed):
  shapes = jax.eval_shape(lambda: train_step.init_params(jax.random.key(0), CONFIG))
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)
  return train_step.init_state(params, optim.make_optimizer())


def test_a_full_disk_fails_in_one_error_and_earlier_steps_stay_usable(small_disk):
  workdir = os.fspath(small_disk("3m") / "run")
  checkpoint.write_config(workdir, {"seed": 0})
  states = [make_state(0), make_state(1)]
  ck = checkpoint.Checkpointer(workdir, keep_last=1000, keep_best=0)
  with pytest.raises(checkpoint.CheckpointWriteError) as err:
    for step in range(1, 1000):
      ck.save(step, states[step % 2], {"data_step": step, "seed": 0})
    ck.wait()
  message = str(err.value)
  assert "\n" not in message and "no space left on device" in message
  complete = ck.steps()
  assert len(complete) > 3 and f"the complete steps {complete} are intact" in message
  step, params = checkpoint.restore_params(workdir, "latest")  # restores and verifies
  assert step == complete[-1]
  want = jax.tree.map(np.asarray, states[step % 2].params)
  for got, expected in zip(jax.tree.leaves(params), jax.tree.leaves(want)):
    np.testing.assert_array_equal(got, expected)

"""What verifying checkpoints costs: save and restore of the td and ti train states with the
checksums (``ge2e_jax.checkpoint.Checkpointer``) beside plain orbax, measured in one run.

Each repeat saves one step synchronously (array checksums, orbax save, file checksums) and
restores it (file check, metadata check, orbax restore, array check); the plain arm is the
same orbax save/restore without any of the checks. Medians over ``--repeats``. No TensorFlow.

  python -m benchmarks.checkpoint_checksums [--repeats 5]
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from ge2e_jax import checkpoint, model, optim, train_step


def make_state(preset: str):
  shapes = jax.eval_shape(lambda: train_step.init_params(jax.random.key(0), model.preset(preset)))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: jax.numpy.asarray(
      rng.standard_normal(s.shape).astype(s.dtype)), shapes)
  return train_step.init_state(params, optim.make_optimizer())


def time_verified(state, workdir: str) -> tuple[float, float]:
  """(save, restore) seconds through the Checkpointer, into a fresh workdir."""
  ck = checkpoint.Checkpointer(workdir, async_save=False)
  start = time.perf_counter()
  ck.save(1, state, {"data_step": 1})
  ck.wait()  # file checksums are written once the save has finished
  saved = time.perf_counter()
  ck.restore(state)
  restored = time.perf_counter()
  ck.close()
  return saved - start, restored - saved


def time_plain(state, directory: str) -> tuple[float, float]:
  """(save, restore) seconds through a bare orbax CheckpointManager, into a fresh directory."""
  options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
  manager = ocp.CheckpointManager(directory, options=options, item_names=("state",))
  start = time.perf_counter()
  manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
  manager.wait_until_finished()
  saved = time.perf_counter()
  manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(state)))
  restored = time.perf_counter()
  manager.close()
  return saved - start, restored - saved


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; medians of {args.repeats}")
  for preset in ("td", "ti"):
    state = make_state(preset)
    megabytes = sum(x.nbytes for x in jax.tree.leaves(state)) / 1e6
    times = {"verified": [], "plain": []}
    with tempfile.TemporaryDirectory() as root:
      for repeat in range(args.repeats):
        times["verified"].append(time_verified(state, os.path.join(root, f"verified{repeat}")))
        times["plain"].append(time_plain(state, os.path.join(root, f"plain{repeat}")))
    med = {arm: [statistics.median(t[i] for t in runs) for i in (0, 1)]
           for arm, runs in times.items()}
    print(f"{preset}: state {megabytes:.1f} MB | save {1e3 * med['verified'][0]:.0f} ms vs "
          f"plain {1e3 * med['plain'][0]:.0f} ms ({med['verified'][0] / med['plain'][0]:.2f}x) "
          f"| restore {1e3 * med['verified'][1]:.0f} ms vs plain {1e3 * med['plain'][1]:.0f} ms"
          f" ({med['verified'][1] / med['plain'][1]:.2f}x)")


if __name__ == "__main__":
  main()

"""Steps/s of the training loop with a host sync every step ("before") and without ("after").

"before" fetches the non-finite streak after every step (``int(device_get(...))``), so the
host waits for each step before it assembles the next batch. "after" is the trainer's way
(``experiments/training_loop.py``): it keeps the longest streak on the device and fetches it,
with the metrics, only at log, eval and checkpoint steps. Both loops here run the same jitted train
step on the same host batches (random audio standing in for the tf.data pipeline's
prefetched output, assembled with ``global_batch`` every step as the trainer does), logging
every ``--log_every`` steps; they alternate ``--repeats`` times and the medians are compared.
No TensorFlow.

  python -m benchmarks.host_sync [--case td_demo:16:6:80 --case td:64:10:80] [--steps 20]
"""

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.train_step import Case, random_audio
from data_pipelines.global_batch import global_batch
from ge2e_jax import model, optim, train_step

DEFAULT_CASES = ("td_demo:16:6:80", "td:64:10:80")  # td_demo is the td model on 16 x 6


def make_loop(case: Case, sync_every_step: bool, log_every: int):
  """``run(steps) -> seconds`` of the trainer's loop, old (sync each step) or new."""
  config = model.preset("td")
  mesh = train_step.make_mesh(jax.devices()[:1])
  opt = optim.make_optimizer()
  step_fn = train_step.make_train_step(config, opt, mesh)
  shardings = train_step.batch_sharding(mesh)
  batches = [{"audio": random_audio(case.n, case.m, case.frames, seed=s),
              "speaker": np.arange(case.n, dtype=np.int32)} for s in range(4)]
  rng = jax.random.key(1)
  state = train_step.replicate(train_step.init_state(train_step.init_params(jax.random.key(0), config), opt),
                          mesh)
  holder = {"state": state}

  def run(steps: int) -> float:
    state = holder["state"]
    worst = no_streak = jnp.zeros((), jnp.int32)
    start = time.perf_counter()
    for step in range(1, steps + 1):
      batch = global_batch(batches[step % len(batches)], shardings)
      state, metrics = step_fn(state, batch, rng)
      if sync_every_step:
        int(jax.device_get(state.nonfinite_streak))
      else:
        worst = jnp.maximum(worst, state.nonfinite_streak)
      if step % log_every == 0 or step == steps:
        if not sync_every_step:
          int(jax.device_get(worst))
          worst = no_streak
        jax.device_get(metrics)
    jax.block_until_ready(state)
    holder["state"] = state
    return time.perf_counter() - start

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--case", action="append", help="name:N:M:frames (repeatable)")
  parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--log_every", type=int, default=10)
  args = parser.parse_args()
  print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  rows = []
  for text in args.case or DEFAULT_CASES:
    case = Case.parse(text)
    loops = {name: make_loop(case, name == "before", args.log_every)
             for name in ("before", "after")}
    for run in loops.values():
      run(2)  # compile and warm up
    times = {name: [] for name in loops}
    for _ in range(args.repeats):
      for name, run in loops.items():
        times[name].append(run(args.steps))
    rate = {name: args.steps / statistics.median(t) for name, t in times.items()}
    rows.append((case, rate))
    print(f"{case}: steps/s before {rate['before']:.3f}, after {rate['after']:.3f} "
          f"(runs: {times})", flush=True)
  print("\n| case (N x M x frames) | per-step sync steps/s | sync at log steps steps/s "
        "| after / before |")
  print("|---|---|---|---|")
  for case, rate in rows:
    print(f"| {case} | {rate['before']:.3f} | {rate['after']:.3f} | "
          f"{rate['after'] / rate['before']:.3f}x |")


if __name__ == "__main__":
  main()

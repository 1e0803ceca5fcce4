"""Subprocess side of tests/test_train_step.py (jax must see its device count before import).

  python tests/sharded_worker.py devices OUT.npz
      8 forced CPU devices: loss, aux and every gradient leaf on a 1-device and an 8-device
      mesh, for every loss, centroid mode, a stacked MultiReader batch and the encoder in
      chunks, in float64 and (two cases) float32.
  python tests/sharded_worker.py process OUT.npz RANK NPROC PORT
      one of NPROC processes (2 CPU devices each) under jax.distributed on 127.0.0.1:
      each feeds only its own speakers (data_pipelines.global_batch assembles the global
      batch) and trains STEPS steps on a mesh of all processes' devices; rank 0 writes the
      loss and the final params. RANK -1 runs the same steps in one process on one device.
"""

import os
import sys

MODE = sys.argv[1]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=" + (
    "8" if MODE == "devices" else "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from data_pipelines import global_batch  # noqa: E402  (jax only, no TensorFlow)
from ge2e_jax import features, model, optim, train_step  # noqa: E402

CONFIG = model.EncoderConfig(cells=16, projection=8)
N, M, FRAMES, STEPS = 8, 4, 12, 3
CASES = [  # each loss, each centroid mode, stacked batches, the encoder in chunks
    # In chunks (gradient caching), the per-device parameter gradients of the encoder's
    # backward pass must still be summed over devices exactly once.
    dict(loss="ge2e_softmax", centroids="exclusive", reduction="sum", encoder_chunks=2),
    dict(loss="ge2e_softmax", centroids="split", reduction="mean"),
    dict(loss="ge2e_contrast", centroids="inclusive", reduction="sum", stacked=True),
    dict(loss="softmax", reduction="sum"),
    dict(loss="te2e", reduction="mean", stacked=True, encoder_chunks=4),
]


def make_batch(stacked=False, seed=0):
  rs = np.random.RandomState(seed)
  lead = (2, N) if stacked else (N,)
  audio = 0.1 * rs.randn(*lead, M, features.samples_for_frames(FRAMES)).astype(np.float32)
  batch = {"audio": audio, "speaker": rs.permutation(3 * N)[:np.prod(lead)].reshape(lead)
           .astype(np.int32)}
  if stacked:
    batch["weights"] = np.array([1.0, 0.3], np.float32)
  return batch


def flatten(prefix, tree):
  return {prefix + jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def run_devices(out):
  """float64 for every case (sharding must be exact); float32 for the first and last."""
  params32 = train_step.init_params(jax.random.key(0), CONFIG, num_speakers=3 * N)
  results = {}
  for dtype, cases in (("float64", CASES), ("float32", [CASES[0], CASES[-1]])):
    with jax.enable_x64(dtype == "float64"):
      params = jax.tree.map(lambda x, dtype=dtype: np.asarray(x, dtype), params32)
      for c, case in enumerate(cases):
        stacked = case.get("stacked", False)
        batch = make_batch(stacked, seed=c)
        batch["audio"] = batch["audio"].astype(dtype)
        for d in (1, 8):
          mesh = train_step.make_mesh(jax.devices()[:d])
          fn = jax.jit(train_step.make_loss_and_grad(CONFIG, mesh, **case))
          sharded = jax.device_put(batch, train_step.batch_sharding(mesh, stacked))
          (value, aux), grads = fn(train_step.replicate(params, mesh), sharded, jax.random.key(7))
          for name, tree in (("loss", value), ("aux", aux), ("grad", grads)):
            results.update(flatten(f"{dtype}/{c}/{d}/{name}", tree))
  np.savez(out, **results)


def run_processes(out, rank, nproc, port):
  if rank >= 0:
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=rank)
    mesh = train_step.make_mesh()
  else:
    mesh = train_step.make_mesh(jax.devices()[:1])
  opt = optim.make_optimizer(decay_every=2)
  step = train_step.make_train_step(CONFIG, opt, mesh, loss="ge2e_softmax")
  state = train_step.replicate(train_step.init_state(train_step.init_params(jax.random.key(0), CONFIG), opt), mesh)
  shardings = train_step.batch_sharding(mesh)
  losses = []
  for s in range(STEPS):
    batch = make_batch(seed=100 + s)
    if rank >= 0:  # each process holds only its own speakers, as its input pipeline does
      per_process = N // nproc
      local = {k: v[rank * per_process:(rank + 1) * per_process] for k, v in batch.items()}
      batch = global_batch.global_batch(local, shardings)
    else:
      batch = jax.device_put(batch, shardings)
    state, metrics = step(state, batch, jax.random.key(3))
    losses.append(float(metrics["loss"]))
  if rank <= 0:
    np.savez(out, loss=np.array(losses), devices=jax.device_count(),
             **flatten("params", state.params))
  if rank >= 0:
    jax.distributed.shutdown()


if __name__ == "__main__":
  if MODE == "devices":
    run_devices(sys.argv[2])
  else:
    run_processes(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))

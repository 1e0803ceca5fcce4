"""The sharded train step: 8 devices == 1 device, 2 processes == 1 process, NaN handling."""

import itertools
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ge2e_jax import features, model, optim, train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "sharded_worker.py")


def run_worker(*args, timeout=300):
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop("XLA_FLAGS", None)
  return subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=300):
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-4000:]


def relative_error(a, b):
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30))


@pytest.fixture(scope="module")
def devices_worker(tmp_path_factory):
  """The 8-device worker, started in the background by the first test that asks for it (the
  2-process test, first in this file), so that it runs beside the tests that follow."""
  out = tmp_path_factory.mktemp("sharded") / "devices.npz"
  proc = run_worker("devices", out)
  yield proc, out
  if proc.poll() is None:
    proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def device_results(devices_worker):
  proc, out = devices_worker
  finish(proc)
  return dict(np.load(out))


@pytest.mark.slow
def test_two_processes_match_one_process(devices_worker, tmp_path):
  """jax.distributed on 127.0.0.1: 2 processes x 2 CPU devices, each feeding its speakers."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = [run_worker("process", tmp_path / f"rank{r}.npz", r, 2, port) for r in (0, 1)]
  single = run_worker("process", tmp_path / "single.npz", -1, 1, 0)
  for p in procs + [single]:
    finish(p)
  multi, one = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "single.npz")
  assert int(multi["devices"]) == 4 and int(one["devices"]) == 2
  np.testing.assert_allclose(multi["loss"], one["loss"], rtol=1e-5)
  params = [k for k in one.files if k.startswith("params")]
  assert len(params) == 14
  for key in params:
    assert relative_error(one[key], multi[key]) <= 1e-5, key


# ------------------------------------------------------------------ in-process step checks
CONFIG = model.EncoderConfig(cells=8, projection=4)
N, M, FRAMES = 4, 3, 6
# One optimiser for every step built here: the same program, compiled once per session.
OPTIMIZER = dict(learning_rate=0.05, decay_every=0)


@pytest.fixture(scope="module")
def one_device():
  mesh = train_step.make_mesh(jax.devices()[:1])
  rs = np.random.RandomState(0)
  audio = 0.1 * rs.randn(N, M, features.samples_for_frames(FRAMES)).astype(np.float32)
  batch = jax.device_put({"audio": audio, "speaker": np.arange(N, dtype=np.int32)},
                         train_step.batch_sharding(mesh))
  params = train_step.init_params(jax.random.key(0), CONFIG)
  return mesh, batch, params


def test_train_step_applies_the_optimizer_to_the_gradient(one_device):
  mesh, batch, params = one_device
  opt = optim.make_optimizer(**OPTIMIZER)
  step = train_step.make_train_step(CONFIG, opt, mesh)
  loss_and_grad = jax.jit(train_step.make_loss_and_grad(CONFIG, mesh))
  rng = jax.random.key(4)
  (value, _), grads = loss_and_grad(params, batch, jax.random.fold_in(rng, 0))
  updates, _ = opt.update(grads, opt.init(params), params)
  want = optax.apply_updates(params, updates)
  state, metrics = step(train_step.init_state(jax.tree.map(jnp.copy, params), opt), batch, rng)
  assert int(state.step) == 1 and bool(metrics["finite"])
  np.testing.assert_allclose(metrics["loss"], value, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss_mean"], value / (N * M), rtol=1e-6)
  np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-6)
  for got, exp in zip(jax.tree.leaves(state.params), jax.tree.leaves(want)):
    np.testing.assert_allclose(got, exp, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ge2e_softmax", "te2e"])
def test_encoder_chunks_give_the_same_loss_and_gradients(one_device, loss):
  """The encoder's backward pass over 4 chunks of the utterances == over all at once: to
  float64 rounding in float64, to float32 summation order in float32."""
  mesh, batch, params = one_device
  rng = jax.random.key(2)
  run = lambda chunks, *args: jax.jit(train_step.make_loss_and_grad(
      CONFIG, mesh, loss=loss, encoder_chunks=chunks))(*args)
  with jax.enable_x64(True):
    as64 = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)
    args64 = (as64(params), dict(batch, audio=as64(batch["audio"])), rng)
    want64 = run(1, *args64)
    for g, w in zip(jax.tree.leaves(run(4, *args64)), jax.tree.leaves(want64)):
      assert g.dtype == jnp.float64 or g.dtype == w.dtype
      np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-13)
  want = run(1, params, batch, rng)
  for g, w in zip(jax.tree.leaves(run(4, params, batch, rng)), jax.tree.leaves(want)):
    assert relative_error(np.asarray(w), np.asarray(g)) < 1e-4  # float32 order, as 8 devices
  with pytest.raises(ValueError, match=r"encoder_chunks=5 must divide the 12 utterances"):
    train_step.make_loss_and_grad(CONFIG, mesh, encoder_chunks=5)(params, batch, rng)


def test_cpu_step_is_compiled_with_the_memory_optimised_scheduler(one_device):
  """Same step, same results; XLA's default CPU scheduler needs more temp memory for it."""
  mesh, batch, params = one_device
  opt = optim.make_optimizer(**OPTIMIZER)
  state = train_step.init_state(params, opt)
  rng = jax.random.key(4)
  compiled = {name: train_step.make_train_step(CONFIG, opt, mesh, compiler_options=options)
              .lower(state, batch, rng).compile()
              for name, options in (("ours", None), ("xla_default", {}))}
  temp = {name: c.memory_analysis().temp_size_in_bytes for name, c in compiled.items()}
  assert temp["ours"] < 0.9 * temp["xla_default"], temp
  copy = lambda: train_step.init_state(jax.tree.map(jnp.copy, params), opt)  # the step donates
  (_, ours), (_, theirs) = (c(copy(), batch, rng) for c in compiled.values())
  np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-6)


def ref_ge2e_softmax_rows(emb, w):
  """Per-row GE2E softmax loss with leave-one-out centroids, float64 loops (b cancels)."""
  e = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
  n, m, _ = e.shape
  rows = []
  for j, i in itertools.product(range(n), range(m)):
    logits = []
    for k in range(n):
      centroid = sum(e[k, u] for u in range(m) if (k, u) != (j, i))
      logits.append(w * e[j, i] @ centroid / np.linalg.norm(centroid))
    rows.append(np.log(np.sum(np.exp(logits))) - logits[j])
  return np.array(rows)


@pytest.mark.slow
def test_stacked_loss_is_the_weighted_sum_of_per_source_losses(one_device):
  """MultiReader: sum_k alpha_k L_k, one similarity matrix per source, against float64 loops."""
  mesh = one_device[0]
  rs = np.random.RandomState(1)
  weights = np.array([1.0, 0.3])
  with jax.enable_x64(True):
    params = jax.tree.map(lambda x: np.asarray(x, np.float64),
                          train_step.init_params(jax.random.key(0), CONFIG))
    batch = {"audio": 0.1 * rs.randn(2, N, M, features.samples_for_frames(FRAMES)),
             "speaker": np.arange(2 * N, dtype=np.int32).reshape(2, N), "weights": weights}
    fn = jax.jit(train_step.make_loss_and_grad(CONFIG, mesh, stacked=True))
    (value, aux), _ = fn(params, jax.device_put(batch, train_step.batch_sharding(mesh, True)),
                         jax.random.key(0))
    emb = np.asarray(model.SpeakerEncoder(CONFIG).apply({"params": params["encoder"]},
                                                        batch["audio"]))
  rows = [ref_ge2e_softmax_rows(emb[k], float(params["similarity"]["w"])) for k in range(2)]
  np.testing.assert_allclose(aux["loss_per_source"], [r.sum() for r in rows], rtol=1e-10)
  np.testing.assert_allclose(value, weights @ [r.sum() for r in rows], rtol=1e-10)
  np.testing.assert_allclose(aux["loss_mean"], weights @ [r.mean() for r in rows], rtol=1e-10)


def test_nonfinite_step_is_skipped_and_counted(one_device):
  mesh, batch, params = one_device
  opt = optim.make_optimizer(**OPTIMIZER)
  step = train_step.make_train_step(CONFIG, opt, mesh)
  bad = dict(batch, audio=batch["audio"].at[0, 0, 5].set(jnp.nan))
  state = train_step.init_state(jax.tree.map(jnp.copy, params), opt)  # the step donates it
  before = jax.tree.map(np.asarray, state.params)
  for expected_streak in (1, 2):
    state, metrics = step(state, bad, jax.random.key(0))
    assert not bool(metrics["finite"])
    assert int(state.nonfinite_streak) == expected_streak
  for got, exp in zip(jax.tree.leaves(state.params), jax.tree.leaves(before)):
    np.testing.assert_array_equal(got, exp)
  state, metrics = step(state, batch, jax.random.key(0))
  assert bool(metrics["finite"])
  assert int(state.nonfinite_streak) == 0 and int(state.nonfinite_steps) == 2
  assert int(state.step) == 3


def test_unknown_loss_is_rejected(one_device):
  mesh, _, _ = one_device
  with pytest.raises(ValueError, match="config.loss.name='triplet': expected one of"):
    train_step.make_loss_and_grad(CONFIG, mesh, loss="triplet")


# ------------------------------------------------- 8 devices (the background worker)
@pytest.mark.slow
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 5e-5)])
def test_eight_devices_match_one_device(device_results, dtype, tolerance):
  """Loss, aux and every gradient leaf of the global batch, 1 vs 8 CPU devices.

  float64 shows the sharded computation is the single-device one (differences ~1e-14;
  a wrong all-gather transpose is off by a factor). float32 differs by rounding only:
  XLA's CPU kernels round differently for 4-row and 32-row shards (log-mel already
  differs by 1 ulp), and the LSTM's backward pass amplifies that to ~2e-5 of a leaf's
  largest entry; the loss itself agrees to ~6e-7.
  """
  keys = [k for k in device_results if k.startswith(dtype + "/") and k.split("/")[2] == "1"]
  cases = {k.split("/")[1] for k in keys}
  assert len(cases) == (5 if dtype == "float64" else 2)
  grads = 0
  for key in keys:
    parts = key.split("/")
    parts[2] = "8"
    one, eight = device_results[key], device_results["/".join(parts)]
    is_grad = parts[3].startswith("grad")
    tol = 1e-5 if (dtype == "float32" and not is_grad) else tolerance
    assert relative_error(one, eight) <= tol, (key, relative_error(one, eight))
    grads += is_grad
  assert grads >= len(cases) * 13  # every leaf of every case was compared

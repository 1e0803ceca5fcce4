"""The paper's optimiser: clip 3, per-parameter gradient scales, halving SGD, w > 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ge2e_jax import model, optim, train_step


def toy_params():
  return {
      "encoder": {"lstmp_0": {"input_kernel": jnp.full((2, 4), 0.5),
                              "projection_kernel": jnp.full((3, 2), -0.25)}},
      "similarity": {"w": jnp.asarray(10.0), "b": jnp.asarray(-5.0)},
  }


def toy_grads(scale):
  return {
      "encoder": {"lstmp_0": {"input_kernel": jnp.full((2, 4), 1.0 * scale),
                              "projection_kernel": jnp.full((3, 2), -2.0 * scale)}},
      "similarity": {"w": jnp.asarray(3.0 * scale), "b": jnp.asarray(-4.0 * scale)},
  }


def reference_update(params, grads, lr, clip=3.0):
  """clip by global norm, scale projection 0.5 and (w, b) 0.01, then -lr."""
  flat_g = {k: np.asarray(v, np.float64) for k, v in _flat(grads).items()}
  norm = np.sqrt(sum(np.sum(g ** 2) for g in flat_g.values()))
  factor = min(1.0, clip / norm)
  scales = {"encoder/lstmp_0/input_kernel": 1.0, "encoder/lstmp_0/projection_kernel": 0.5,
            "similarity/w": 0.01, "similarity/b": 0.01}
  return {k: np.asarray(p, np.float64) - lr * scales[k] * factor * flat_g[k]
          for k, p in _flat(params).items()}


def _flat(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.parametrize("grad_scale", [0.1, 10.0])  # below and above the clipping norm
def test_sgd_update_matches_reference(grad_scale):
  params, grads = toy_params(), toy_grads(grad_scale)
  opt = optim.make_optimizer(learning_rate=0.01, decay_every=100)
  updates, _ = opt.update(grads, opt.init(params), params)
  got = _flat(jax.tree.map(lambda p, u: p + u, params, updates))
  want = reference_update(params, grads, lr=0.01)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_learning_rate_halves_every_k_steps():
  params = toy_params()
  opt = optim.make_optimizer(learning_rate=0.01, decay_every=3)
  state = opt.init(params)
  grads = toy_grads(0.1)
  seen = []
  for _ in range(7):
    updates, state = opt.update(grads, state, params)
    seen.append(float(updates["encoder"]["lstmp_0"]["input_kernel"][0, 0]))
  lr = np.array(seen) / -0.1
  np.testing.assert_allclose(lr, [0.01] * 3 + [0.005] * 3 + [0.0025], rtol=1e-6)
  constant = optim.learning_rate_schedule(optim.OptimizerConfig(decay_every=0))
  assert float(constant(10 ** 9)) == pytest.approx(0.01)


def test_w_is_kept_positive():
  params = toy_params()
  params["similarity"]["w"] = jnp.asarray(1e-3)
  grads = toy_grads(0.0)
  grads["similarity"]["w"] = jnp.asarray(1e4)  # would drive w to about -1
  opt = optim.make_optimizer(learning_rate=1.0, clip_norm=1e9)
  updates, _ = opt.update(grads, opt.init(params), params)
  new_w = float(params["similarity"]["w"] + updates["similarity"]["w"])
  assert new_w > 0 and new_w == pytest.approx(optim.W_FLOOR, rel=1e-3)
  # b is free to go anywhere
  grads["similarity"]["b"] = jnp.asarray(1e4)
  updates, _ = opt.update(grads, opt.init(params), params)
  assert float(params["similarity"]["b"] + updates["similarity"]["b"]) < -50


def test_labels_find_every_projection_kernel_of_the_real_encoder():
  params = train_step.init_params(jax.random.key(0), model.EncoderConfig(cells=4, projection=2))
  labels = _flat(optim.param_labels(params))
  assert {k for k, v in labels.items() if v == "projection"} == {
      f"encoder/lstmp_{i}/projection_kernel" for i in range(3)}
  assert {k for k, v in labels.items() if v == "similarity"} == {"similarity/w", "similarity/b"}
  assert sum(v == "default" for v in labels.values()) == 9


def test_adam_option_and_bad_kind():
  params, grads = toy_params(), toy_grads(1.0)
  opt = optim.make_optimizer(kind="adam", learning_rate=0.01)
  updates, _ = opt.update(grads, opt.init(params), params)
  # Adam's first step moves every parameter by ~lr (sign of the gradient), before scaling.
  np.testing.assert_allclose(updates["encoder"]["lstmp_0"]["input_kernel"], -0.01, rtol=1e-4)
  with pytest.raises(ValueError, match=r"config.optimizer.kind='lamb': expected one of"):
    optim.make_optimizer(kind="lamb")


def reference_lr(step, lr, schedule, warmup, decay_steps, final, decay_every):
  """float64 NumPy: linear warm-up from 0, then halving / cosine / exponential decay."""
  step = np.asarray(step, np.float64)
  warm = lr * step / max(warmup, 1)
  after = step - warmup
  if schedule == "halving":
    decayed = lr * 0.5 ** np.floor(after / decay_every)
  else:
    progress = np.clip(after / (decay_steps - warmup), 0.0, 1.0)
    if schedule == "cosine":
      decayed = lr * (final + (1 - final) * 0.5 * (1 + np.cos(np.pi * progress)))
    else:
      decayed = lr * final ** progress
  return np.where(step < warmup, warm, decayed)


@pytest.mark.parametrize("schedule", ["halving", "cosine", "exponential"])
@pytest.mark.parametrize("warmup", [0, 5])
def test_schedules_match_reference(schedule, warmup):
  steps = np.arange(40)
  fn = optim.learning_rate_schedule(optim.OptimizerConfig(
      learning_rate=0.02, decay_every=7, schedule=schedule, warmup_steps=warmup, decay_steps=30,
      final_fraction=0.05))
  got = np.array([float(fn(s)) for s in steps])
  want = reference_lr(steps, 0.02, schedule, warmup, 30, 0.05, decay_every=7)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
  if schedule != "halving":
    assert got[-1] == pytest.approx(0.02 * 0.05)  # held at the floor after decay_steps


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_scheduled_updates_keep_the_clip_and_the_group_scales(kind):
  """A constant gradient: SGD steps by -lr(t) * g, Adam by ~-lr(t) * sign(g); both times the
  group scale (0.5 projection, 0.01 similarity), on the clipped gradient."""
  params, grads = toy_params(), toy_grads(10.0)  # norm > 3: clipped
  opt = optim.make_optimizer(kind=kind, learning_rate=0.1, schedule="cosine", warmup_steps=2,
                             decay_steps=6, final_fraction=0.1)
  state = opt.init(params)
  scales = {"encoder/lstmp_0/input_kernel": 1.0, "encoder/lstmp_0/projection_kernel": 0.5,
            "similarity/w": 0.01, "similarity/b": 0.01}
  for step in range(8):
    updates, state = opt.update(grads, state, params)
    lr = reference_lr(step, 0.1, "cosine", 2, 6, 0.1, 1)
    for key, update in _flat(updates).items():
      if kind == "sgd":  # reference_update: the paper's clip + scales at this step's lr
        want = reference_update(params, grads, lr)[key] - np.asarray(_flat(params)[key])
      else:
        want = -lr * scales[key] * np.sign(np.asarray(_flat(grads)[key]))
      np.testing.assert_allclose(update, want, rtol=1e-4, atol=1e-9, err_msg=f"{step} {key}")


def test_bad_settings_are_rejected_in_one_line():
  with pytest.raises(ValueError, match=r"config.optimizer.schedule='linear': expected one of"):
    optim.make_optimizer(schedule="linear")
  with pytest.raises(ValueError, match=r"config.optimizer.warmup_steps=10: expected fewer than "
                                       r"config.optimizer.decay_steps=10 \(schedule 'cosine'\)"):
    optim.make_optimizer(schedule="cosine", warmup_steps=10, decay_steps=10)
  with pytest.raises(ValueError, match=r"config.optimizer.clip_norm=0.0: expected a finite "
                                       r"number > 0"):
    optim.make_optimizer(clip_norm=0.0)
  optim.make_optimizer(schedule="halving", warmup_steps=10, decay_steps=10)  # decay_steps unused

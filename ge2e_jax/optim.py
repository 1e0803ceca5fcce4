"""The paper's optimiser as an optax chain (Wan et al. 2018, §3), and Adam beside it.

clip the gradient's global L2 norm at 3 -> scale the LSTM projection weights' gradient by
0.5 and (w, b)'s by 0.01 -> SGD (lr 0.01 halved every ``decay_every`` steps) -> keep w above
a small positive floor.

``kind="adam"`` runs Adam after the clip and applies the per-group scales to Adam's update
(Adam divides out any scale applied to its input gradient, so scaling before it would do
nothing); the scales keep their meaning: projection and (w, b) steps are 0.5x and 0.01x.
``schedule`` picks the learning rate: "halving" (the paper's), or a linear warm-up over
``warmup_steps`` to ``learning_rate`` followed by "cosine" or "exponential" decay that
reaches ``final_fraction * learning_rate`` at step ``decay_steps`` and stays there.
"""

from typing import Literal

import jax
import jax.numpy as jnp
import optax

W_FLOOR = 1e-6


def param_labels(params):
  """'projection' for LSTMP projection kernels, 'similarity' for (w, b), else 'default'."""
  def label(path, _):
    keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
    if keys[0] == "similarity":
      return "similarity"
    if keys[-1] == "projection_kernel":
      return "projection"
    return "default"
  return jax.tree_util.tree_map_with_path(label, params)


def keep_positive(select, floor: float = W_FLOOR) -> optax.GradientTransformation:
  """Clamp the update of the leaves chosen by ``select(params)`` so param + update >= floor."""
  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("keep_positive needs params: call optimizer.update(grads, state, params)")
    mask = select(params)
    updates = jax.tree.map(
        lambda u, p, m: jnp.maximum(u, floor - p) if m else u, updates, params, mask)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def _w_only(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: (len(path) == 2 and getattr(path[0], "key", None) == "similarity"
                       and getattr(path[1], "key", None) == "w"), params)


SCHEDULES = ("halving", "cosine", "exponential")


def learning_rate_schedule(learning_rate: float, decay_every: int,
                           schedule: str = "halving", warmup_steps: int = 0,
                           decay_steps: int = 100_000, final_fraction: float = 0.01):
  """The learning rate per step (see the module doc).

  "halving": lr halved every ``decay_every`` steps (staircase; decay_every <= 0 keeps it
  constant), after ``warmup_steps`` of linear warm-up when > 0.
  """
  if schedule not in SCHEDULES:
    raise ValueError(f"optimizer schedule must be one of {SCHEDULES}, got {schedule!r}")
  if warmup_steps < 0 or (schedule != "halving" and not warmup_steps < decay_steps):
    raise ValueError(f"optimizer: need 0 <= warmup_steps < decay_steps, got {warmup_steps}, "
                     f"{decay_steps}")
  if schedule == "cosine":
    decay = optax.cosine_decay_schedule(learning_rate, decay_steps - warmup_steps,
                                        alpha=final_fraction)
  elif schedule == "exponential":
    decay = optax.exponential_decay(
        learning_rate, transition_steps=1,
        decay_rate=final_fraction ** (1.0 / (decay_steps - warmup_steps)),
        end_value=final_fraction * learning_rate)
  elif decay_every <= 0:
    decay = optax.constant_schedule(learning_rate)
  else:
    decay = optax.exponential_decay(learning_rate, transition_steps=decay_every,
                                    decay_rate=0.5, staircase=True)
  if warmup_steps == 0:
    return decay
  warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def make_optimizer(learning_rate: float = 0.01, decay_every: int = 30_000_000,
                   clip_norm: float = 3.0, projection_scale: float = 0.5,
                   similarity_scale: float = 0.01, kind: Literal["sgd", "adam"] = "sgd",
                   schedule: str = "halving", warmup_steps: int = 0,
                   decay_steps: int = 100_000,
                   final_fraction: float = 0.01) -> optax.GradientTransformation:
  if kind not in ("sgd", "adam"):
    raise ValueError(f"optimizer kind must be 'sgd' or 'adam', got {kind!r}")
  lr = learning_rate_schedule(learning_rate, decay_every, schedule, warmup_steps, decay_steps,
                              final_fraction)
  scales = optax.multi_transform(
      {"projection": optax.scale(projection_scale),
       "similarity": optax.scale(similarity_scale),
       "default": optax.identity()},
      param_labels)
  clip = optax.clip_by_global_norm(clip_norm)
  if kind == "sgd":  # the paper's order (SGD is linear: the same as scaling after it)
    return optax.chain(clip, scales, optax.sgd(lr), keep_positive(_w_only))
  return optax.chain(clip, optax.adam(lr), scales, keep_positive(_w_only))

"""The paper's optimiser as an optax chain (Wan et al. 2018, §3).

clip the gradient's global L2 norm at 3 -> scale the LSTM projection weights' gradient by
0.5 and (w, b)'s by 0.01 -> SGD (lr 0.01 halved every ``decay_every`` steps) or Adam ->
keep w above a small positive floor.
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


def learning_rate_schedule(learning_rate: float, decay_every: int):
  """lr halved every ``decay_every`` steps (staircase); decay_every <= 0 keeps it constant."""
  if decay_every <= 0:
    return optax.constant_schedule(learning_rate)
  return optax.exponential_decay(learning_rate, transition_steps=decay_every, decay_rate=0.5,
                                 staircase=True)


def make_optimizer(learning_rate: float = 0.01, decay_every: int = 30_000_000,
                   clip_norm: float = 3.0, projection_scale: float = 0.5,
                   similarity_scale: float = 0.01,
                   kind: Literal["sgd", "adam"] = "sgd") -> optax.GradientTransformation:
  if kind not in ("sgd", "adam"):
    raise ValueError(f"optimizer kind must be 'sgd' or 'adam', got {kind!r}")
  schedule = learning_rate_schedule(learning_rate, decay_every)
  base = optax.sgd(schedule) if kind == "sgd" else optax.adam(schedule)
  return optax.chain(
      optax.clip_by_global_norm(clip_norm),
      optax.multi_transform(
          {"projection": optax.scale(projection_scale),
           "similarity": optax.scale(similarity_scale),
           "default": optax.identity()},
          param_labels),
      base,
      keep_positive(_w_only),
  )

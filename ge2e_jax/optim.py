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

import dataclasses

import jax
import jax.numpy as jnp
import optax

from ge2e_jax import settings

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


def _warmup_before_decay(config, path):
  if config.schedule != "halving" and not config.warmup_steps < config.decay_steps:
    return (f"config.{path}.warmup_steps={config.warmup_steps}: expected fewer than "
            f"config.{path}.decay_steps={config.decay_steps} (schedule {config.schedule!r})")
  return None


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """The optimiser of a run (``config.optimizer``); the defaults are the paper's."""
  kind: str = settings.setting("sgd", settings.one_of("sgd", "adam"),
                               "'sgd' (the paper's) or 'adam'")
  learning_rate: float = settings.setting(0.01, settings.number(0, low_open=True),
                                          "the (peak) learning rate")
  decay_every: int = settings.setting(
      30_000_000, settings.integer(0, note="steps; 0 keeps the rate constant"),
      "'halving': the rate is halved every this many steps")
  clip_norm: float = settings.setting(3.0, settings.number(0, low_open=True),
                                      "the gradient's global L2 norm is clipped to this")
  projection_scale: float = settings.setting(0.5, settings.number(0, low_open=True),
                                             "gradient scale of the LSTMP projection weights")
  similarity_scale: float = settings.setting(0.01, settings.number(0, low_open=True),
                                             "gradient scale of the similarity's (w, b)")
  schedule: str = settings.setting(
      "halving", settings.one_of(*SCHEDULES),
      "'halving' (the paper's), or warm-up then 'cosine' / 'exponential' decay to "
      "final_fraction * learning_rate at decay_steps")
  warmup_steps: int = settings.setting(0, settings.integer(0, note="steps"),
                                       "linear warm-up from 0 to learning_rate")
  decay_steps: int = settings.setting(100_000, settings.integer(1, note="steps"),
                                      "'cosine' / 'exponential': the step the decay ends at")
  final_fraction: float = settings.setting(0.01, settings.number(0, low_open=True),
                                           "'cosine' / 'exponential': the last rate's fraction")

  def __post_init__(self):
    settings.check(self, "optimizer", _warmup_before_decay)


def learning_rate_schedule(config: OptimizerConfig):
  """The learning rate per step (see the module doc).

  "halving": lr halved every ``decay_every`` steps (staircase; 0 keeps it constant), after
  ``warmup_steps`` of linear warm-up when > 0.
  """
  c = config
  if c.schedule == "cosine":
    decay = optax.cosine_decay_schedule(c.learning_rate, c.decay_steps - c.warmup_steps,
                                        alpha=c.final_fraction)
  elif c.schedule == "exponential":
    decay = optax.exponential_decay(
        c.learning_rate, transition_steps=1,
        decay_rate=c.final_fraction ** (1.0 / (c.decay_steps - c.warmup_steps)),
        end_value=c.final_fraction * c.learning_rate)
  elif c.decay_every == 0:
    decay = optax.constant_schedule(c.learning_rate)
  else:
    decay = optax.exponential_decay(c.learning_rate, transition_steps=c.decay_every,
                                    decay_rate=0.5, staircase=True)
  if c.warmup_steps == 0:
    return decay
  warmup = optax.linear_schedule(0.0, c.learning_rate, c.warmup_steps)
  return optax.join_schedules([warmup, decay], [c.warmup_steps])


def make_optimizer(**fields) -> optax.GradientTransformation:
  """The chain of ``OptimizerConfig(**fields)`` (no fields: the paper's)."""
  c = OptimizerConfig(**fields)
  scales = optax.multi_transform(
      {"projection": optax.scale(c.projection_scale),
       "similarity": optax.scale(c.similarity_scale),
       "default": optax.identity()},
      param_labels)
  clip = optax.clip_by_global_norm(c.clip_norm)
  lr = learning_rate_schedule(c)
  if c.kind == "sgd":  # the paper's order (SGD is linear: the same as scaling after it)
    return optax.chain(clip, scales, optax.sgd(lr), keep_positive(_w_only))
  return optax.chain(clip, optax.adam(lr), scales, keep_positive(_w_only))

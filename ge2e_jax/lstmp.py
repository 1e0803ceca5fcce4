"""The LSTMP recurrence with a hand-written backward pass.

Differentiating ``lax.scan`` accumulates the recurrent and projection weight gradients
inside the reverse loop: two small (P x B) @ (B x 4H)-shaped matmuls per time step, and a
long chain of carries. Here the reverse loop only carries (dr, dc) and emits the gate
gradients; the weight gradients are then two large matmuls over all T x B rows at once, as
cuDNN does (what it changed in the train step: BENCHMARKS.md).

Shapes: x_gates (T, B, 4H) = x W_in + bias for all frames (gate order i, f, g, o),
w_rec (P, 4H), w_proj (H, P) -> r (T, B, P), the projected outputs r_t = (o * tanh(c_t)) W_p,
with c_{-1} = r_{-1} = 0.
"""

from functools import partial

import jax
import jax.numpy as jnp


def lstmp_recurrence(x_gates, w_rec, w_proj, unroll: int = 1):
  """r (T, B, P) for precomputed input gates; differentiable in all three arrays."""
  # Under shard_map the weights are replicated while x_gates varies per device. Casting
  # them to x_gates' varying axes lets the custom VJP return per-device weight gradients;
  # the cast's transpose then sums them over devices, as plain autodiff would.
  axes = _varying_axes(x_gates)
  if axes:
    w_rec, w_proj = (jax.lax.pcast(w, axes, to="varying") for w in (w_rec, w_proj))
  return _recurrence(x_gates, w_rec, w_proj, unroll)


def _varying_axes(x) -> tuple:
  """Mesh axes x varies over inside shard_map (empty outside); the field moved in jax 0.10."""
  aval = jax.typeof(x)
  manual = getattr(aval, "manual_axis_type", None)
  return tuple(sorted(manual.varying if manual is not None else getattr(aval, "vma", ())))


def _gate_affine(four_h: int, dtype):
  """(scale, offset) per gate column: act = scale * tanh(scale * z) + offset.

  sigmoid(z) = 0.5 tanh(z / 2) + 0.5, so one tanh over all four gates gives i, f, o
  (scale 0.5, offset 0.5) and g (scale 1, offset 0): half the transcendental work of
  separate sigmoid and tanh calls (timings: BENCHMARKS.md).
  """
  cells = four_h // 4
  scale = jnp.repeat(jnp.asarray([0.5, 0.5, 1.0, 0.5], dtype), cells)
  offset = jnp.repeat(jnp.asarray([0.5, 0.5, 0.0, 0.5], dtype), cells)
  return scale, offset


def _scan_forward(x_gates, w_rec, w_proj, unroll):
  """r (T, B, P) and what the backward pass needs: tanh of the gate pre-activations
  (scaled), c_{t-1}, tanh(c_t) and h_t."""
  scale, offset = _gate_affine(x_gates.shape[-1], x_gates.dtype)

  def step(carry, xg):
    c_prev, r = carry
    t = jnp.tanh((xg + r @ w_rec) * scale)
    i, f, g, o = jnp.split(t * scale + offset, 4, axis=-1)
    c = f * c_prev + i * g
    tanh_c = jnp.tanh(c)
    h = o * tanh_c
    r = h @ w_proj
    return (c, r), (r, t, c_prev, tanh_c, h)

  cells, proj = w_proj.shape
  init = (jnp.zeros_like(x_gates[0, :, :cells]), jnp.zeros_like(x_gates[0, :, :proj]))
  _, outputs = jax.lax.scan(step, init, x_gates, unroll=unroll)
  return outputs


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _recurrence(x_gates, w_rec, w_proj, unroll):
  return _scan_forward(x_gates, w_rec, w_proj, unroll)[0]


def _recurrence_fwd(x_gates, w_rec, w_proj, unroll):
  r, t, c_prev, _, _ = _scan_forward(x_gates, w_rec, w_proj, unroll)
  return r, ((r, t, c_prev), w_rec, w_proj)


def _recurrence_bwd(unroll, residuals, dr_out):
  (r, t, c_prev), w_rec, w_proj = residuals
  scale, offset = _gate_affine(t.shape[-1], t.dtype)

  def step(carry, inputs):
    dr_rec, dc_next = carry
    dr_t, t_t, c_before = inputs
    i, f, g, o = jnp.split(t_t * scale + offset, 4, axis=-1)
    tanh_c = jnp.tanh(f * c_before + i * g)  # recomputed: cheaper than keeping (T, B, H)
    dr = dr_t + dr_rec
    dh = dr @ w_proj.T
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
    d_act = jnp.concatenate([dc * g, dc * c_before, dc * i, dh * tanh_c], axis=-1)
    dz = d_act * (scale * scale) * (1 - t_t * t_t)
    return (dz @ w_rec.T, dc * f), (dz, dr, o * tanh_c)

  init = (jnp.zeros_like(dr_out[0]), jnp.zeros_like(c_prev[0]))
  _, (dz, dr, h) = jax.lax.scan(step, init, (dr_out, t, c_prev), reverse=True, unroll=unroll)
  rows = lambda a: a.reshape(-1, a.shape[-1])  # 2-D contractions (XLA:CPU: BENCHMARKS.md)
  d_w_rec = rows(r[:-1]).T @ rows(dz[1:])  # r_{t-1} meets dz_t; r_{-1} = 0
  d_w_proj = rows(h).T @ rows(dr)
  return dz, d_w_rec, d_w_proj


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def lstm_recurrence(x_gates, w_rec, unroll: int = 1):
  """h (T, B, H) of a plain LSTM (no projection) for precomputed input gates.

  Inference-first (imported encoders): a ``lax.scan`` with plain autodiff, no custom VJP.
  """
  scale, offset = _gate_affine(x_gates.shape[-1], x_gates.dtype)

  def step(carry, xg):
    c_prev, h = carry
    t = jnp.tanh((xg + h @ w_rec) * scale)
    i, f, g, o = jnp.split(t * scale + offset, 4, axis=-1)
    c = f * c_prev + i * g
    h = o * jnp.tanh(c)
    return (c, h), h

  cells = w_rec.shape[0]
  init = (jnp.zeros_like(x_gates[0, :, :cells]), jnp.zeros_like(x_gates[0, :, :cells]))
  return jax.lax.scan(step, init, x_gates, unroll=unroll)[1]

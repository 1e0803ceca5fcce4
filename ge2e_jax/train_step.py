"""The pure, device-sharded train step.

``make_train_step`` returns the jitted ``step(state, batch, rng) -> (state, metrics)``. Its
loss and gradient run under ``jax.shard_map`` over a 1-D mesh axis ``data`` (the optimiser
then updates the replicated params in the same jit). Each device holds N/d speakers x M
utterances of raw audio, computes log-mel and embeddings locally, and the losses
all-gather the speakers' centroids so every utterance is scored against all N speakers --
the loss and gradients are those of one device holding the whole batch. The same code runs
multi-host over a mesh of all processes' devices after ``jax.distributed.initialize``.

Batches: ``{"audio": (N, M, S) float32, "speaker": (N,) int}`` or, for MultiReader's
stacked mode, ``{"audio": (K, N, M, S), "speaker": (K, N), "weights": (K,)}``.
A step whose loss or gradient is not finite leaves params and optimiser state unchanged
and is counted in ``state.nonfinite_steps`` (total) and ``state.nonfinite_streak``.
An optional ``augment(audio, rng) -> audio`` (``ge2e_jax.augment.Augmenter``) transforms
each device's audio before the encoder, with rng = fold_in(fold_in(step rng,
AUGMENT_STREAM), device index): every device draws differently, and the augmented batch
is a pure function of (seed, step).
"""

import dataclasses
import functools
import typing
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from ge2e_jax import features, losses, settings
from ge2e_jax.model import EncoderConfig, SpeakerEncoder, init_encoder_params

AXIS = "data"
INIT_W, INIT_B = 10.0, -5.0
AUGMENT_STREAM = 0x617567  # folds the augmentation key out of the step key ("aug")

LossName = Literal["ge2e_softmax", "ge2e_contrast", "te2e", "softmax"]
LOSSES = typing.get_args(LossName)


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """The loss a run trains with (``config.loss``)."""
  name: LossName = settings.setting(
      "ge2e_softmax", settings.one_of(*LOSSES),
      "GE2E softmax or contrast (Wan et al. 2018), TE2E, or a speaker-softmax baseline")
  centroids: losses.Centroids = settings.setting(
      "exclusive", settings.one_of(*typing.get_args(losses.Centroids)),
      "GE2E: each utterance against its speaker's centroid without it (the paper's), with "
      "it, or of the other half of the speaker's utterances ('split')")
  reduction: losses.Reduction = settings.setting(
      "sum", settings.one_of(*typing.get_args(losses.Reduction)),
      "what the optimiser sees: the sum (the paper's L_G) or the mean")

  def __post_init__(self):
    settings.check(self, "loss")


_LOSS = LossOptions()


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; with the data position it is what a checkpoint holds."""
  step: jax.Array
  params: Any
  opt_state: Any
  nonfinite_steps: jax.Array
  nonfinite_streak: jax.Array


def init_params(rng, config: EncoderConfig, num_speakers: int | None = None):
  """{"encoder", "similarity": {"w", "b"}[, "classifier"]} -- the whole trainable pytree.

  "classifier" (a linear layer over ``num_speakers`` training speakers) is the softmax
  baseline's head; GE2E and TE2E don't need it.
  """
  enc_rng, cls_rng = jax.random.split(rng)
  params = {
      "encoder": init_encoder_params(enc_rng, config),
      "similarity": {"w": jnp.asarray(INIT_W, jnp.float32), "b": jnp.asarray(INIT_B, jnp.float32)},
  }
  if num_speakers is not None:
    kernel = jax.nn.initializers.lecun_normal()(cls_rng, (config.projection, num_speakers))
    params["classifier"] = {"kernel": kernel, "bias": jnp.zeros((num_speakers,), jnp.float32)}
  return params


def init_state(params, optimizer: optax.GradientTransformation) -> TrainState:
  zero = lambda: jnp.zeros((), jnp.int32)  # distinct buffers: the step donates its state
  return TrainState(step=zero(), params=params, opt_state=optimizer.init(params),
                    nonfinite_steps=zero(), nonfinite_streak=zero())


def make_mesh(devices=None):
  """A 1-D mesh named ``data`` over ``devices`` (default: every process's devices)."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), (AXIS,))


def replicate(tree, mesh):
  """Place a host pytree (identical on every process) replicated on every device of mesh."""
  sharding = NamedSharding(mesh, P())
  return jax.tree.map(
      lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda _: np.asarray(x)),
      tree)


def _batch_specs(stacked: bool):
  """Speakers (dim 0, or 1 when stacked) split over ``data``; MultiReader weights replicated."""
  speakers = P(None, AXIS) if stacked else P(AXIS)
  specs = {"audio": speakers, "speaker": speakers}
  if stacked:
    specs["weights"] = P()
  return specs


def batch_sharding(mesh, stacked: bool = False):
  """NamedShardings for a batch dict (see ``_batch_specs``)."""
  return {k: NamedSharding(mesh, spec) for k, spec in _batch_specs(stacked).items()}


def make_loss_and_grad(config: EncoderConfig, mesh, *, loss: LossName = _LOSS.name,
                       centroids: losses.Centroids = _LOSS.centroids,
                       reduction: losses.Reduction = _LOSS.reduction, stacked: bool = False,
                       augment=None, encoder_chunks: int = 1):
  """``fn(params, batch, rng) -> ((loss, aux), grads)`` under ``shard_map`` over ``data``.

  The loss and the (replicated) gradients are those of the whole global batch. aux holds
  ``loss_mean`` (the loss with ``reduction="mean"``: per utterance row, or per tuple for
  TE2E) and, when stacked, ``loss_per_source`` (K,). The stacked (MultiReader) loss is
  ``losses.multireader_loss``: one similarity matrix per source, sum_k alpha_k L_k.
  ``augment``: see the module doc; None trains on the audio as is.

  ``encoder_chunks`` > 1 trades compute for memory: the loss couples every utterance of the
  batch, but the encoder sees each on its own. So the embeddings are computed without
  gradients, the loss's gradient with respect to them taken, and the encoder's backward
  pass run over ``encoder_chunks`` chunks of each device's utterances in turn (a
  ``lax.scan``, recomputing each chunk's forward pass), as in "gradient caching" (Gao et
  al. 2021): one more forward pass, and the activations of one chunk instead of all.
  Same loss and gradients up to float summation order.
  """
  LossOptions(loss, centroids, reduction)  # its checks: one line naming a bad value
  encoder = SpeakerEncoder(config)

  def source_loss(params, emb, speaker, rng, reduction):
    """The loss of one (n, M, D) source on this speaker shard, reduced per ``reduction``."""
    w, b = params["similarity"]["w"], params["similarity"]["b"]
    if loss == "ge2e_softmax" or loss == "ge2e_contrast":
      return losses.ge2e_loss(emb, w, b, loss.removeprefix("ge2e_"), centroids, reduction,
                              axis_name=AXIS)
    if loss == "te2e":
      shift = jax.random.randint(rng, (), 1, emb.shape[0] * jax.lax.axis_size(AXIS))
      return losses.te2e_loss(emb, w, b, shift, reduction, axis_name=AXIS)
    head = params["classifier"]
    logits = emb @ head["kernel"] + head["bias"]
    labels = jnp.broadcast_to(speaker[:, None], emb.shape[:2])
    return losses.speaker_softmax_loss(logits, labels, reduction, axis_name=AXIS)

  def device_audio(batch, rng):
    audio = batch["audio"]
    if augment is not None:
      audio = augment(audio, jax.random.fold_in(jax.random.fold_in(rng, AUGMENT_STREAM),
                                                jax.lax.axis_index(AXIS)))
    return audio

  def embed(encoder_params, audio):
    # Volume normalisation (imported encoders) per crop: training sees no whole utterance.
    audio = features.normalize_volume(audio, config.target_dbfs)
    return encoder.apply({"params": encoder_params}, audio)

  def loss_fn(params, batch, rng):
    return loss_of_embeddings(params, embed(params["encoder"], device_audio(batch, rng)),
                              batch, rng)

  def loss_of_embeddings(params, emb, batch, rng):
    # The per-row mean is a second, undifferentiated reduction of the same loss (cheap next
    # to the encoder); the optimiser sees ``reduction``.
    reduced = lambda how: functools.partial(source_loss, params, reduction=how)
    if not stacked:
      args = (emb, batch["speaker"], rng)
      return reduced(reduction)(*args), {"loss_mean": reduced("mean")(*args)}
    args = (emb, batch["weights"], batch["speaker"], jax.random.split(rng, emb.shape[0]))
    value, per_source = losses.multireader_loss(reduced(reduction), *args)
    mean, _ = losses.multireader_loss(reduced("mean"), *args)
    return value, {"loss_mean": mean, "loss_per_source": per_source}

  def chunked_loss_and_grad(params, batch, rng):
    audio = device_audio(batch, rng)
    rows = int(np.prod(audio.shape[:-1]))
    if rows % encoder_chunks:
      raise ValueError(f"config.train.encoder_chunks={encoder_chunks} must divide the "
                       f"{rows} utterances each device holds per step")
    chunks = audio.reshape(encoder_chunks, rows // encoder_chunks, audio.shape[-1])
    emb = jax.lax.map(functools.partial(embed, params["encoder"]), chunks)
    emb = emb.reshape(audio.shape[:-1] + emb.shape[-1:])
    (value, aux), (grads, d_emb) = jax.value_and_grad(
        loss_of_embeddings, argnums=(0, 1), has_aux=True)(params, emb, batch, rng)

    def backward(total, chunk):
      audio_chunk, d_emb_chunk = chunk
      _, vjp = jax.vjp(lambda p: embed(p, audio_chunk), params["encoder"])
      return jax.tree.map(jnp.add, total, vjp(d_emb_chunk)[0]), None

    encoder_grads, _ = jax.lax.scan(
        backward, jax.tree.map(jnp.zeros_like, grads["encoder"]),
        (chunks, d_emb.reshape(encoder_chunks, rows // encoder_chunks, -1)))
    return (value, aux), dict(grads, encoder=encoder_grads)

  if encoder_chunks < 1:
    raise ValueError(f"config.train.encoder_chunks must be >= 1, got {encoder_chunks}")
  loss_and_grad = (jax.value_and_grad(loss_fn, has_aux=True) if encoder_chunks == 1
                   else chunked_loss_and_grad)
  return jax.shard_map(loss_and_grad, mesh=mesh,
                       in_specs=(P(), _batch_specs(stacked), P()), out_specs=P())


# XLA:CPU's default scheduler allocates the stacked outputs of every lax.scan in the step
# (each LSTMP layer's gates and their gradients) at the start of the program, all live at
# once; the memory-optimised one allocates each when its loop runs: less memory at the same
# speed (benchmarks/step_memory.py, BENCHMARKS.md).
CPU_COMPILER_OPTIONS = {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def make_train_step(config: EncoderConfig, optimizer: optax.GradientTransformation, mesh,
                    compiler_options: dict | None = None, **loss_options):
  """Build the jitted ``step(state, batch, rng) -> (state, metrics)``.

  ``loss_options`` go to ``make_loss_and_grad``. metrics: ``loss`` (the value the
  optimiser sees, per ``reduction``), ``loss_mean``, ``loss_per_source`` when stacked,
  ``w``, ``b`` (before the update), ``grad_norm`` (before clipping) and ``finite``.
  ``rng`` is folded with the step number, so one key serves the whole run.
  ``compiler_options``: XLA's, for the step; None = ``CPU_COMPILER_OPTIONS`` on a CPU mesh.
  """
  loss_and_grad = make_loss_and_grad(config, mesh, **loss_options)

  def step(state: TrainState, batch, rng):
    rng = jax.random.fold_in(rng, state.step)
    (value, aux), grads = loss_and_grad(state.params, batch, rng)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(value) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = TrainState(
        step=state.step + 1,
        params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
        nonfinite_streak=jnp.where(finite, 0, state.nonfinite_streak + 1))
    metrics = {"loss": value, "grad_norm": grad_norm, "finite": finite,
               "w": state.params["similarity"]["w"], "b": state.params["similarity"]["b"],
               **aux}
    return new_state, metrics

  if compiler_options is None:
    on_cpu = mesh.devices.flat[0].platform == "cpu"
    compiler_options = CPU_COMPILER_OPTIONS if on_cpu else {}
  return jax.jit(step, donate_argnums=0, compiler_options=compiler_options)

"""PyTorch GE2E speaker encoders (Resemblyzer, Real-Time-Voice-Cloning) as ge2e_jax params.

Both projects save ``{"step", "model_state", "optimizer_state"}`` with ``model_state`` the
state dict of ``nn.LSTM(40, H, L, batch_first=True)`` + ``nn.Linear(H, D)`` (+ the GE2E
``similarity_weight``/``similarity_bias``); the embedding is ReLU(linear(h_T of the last
layer))/norm. Resemblyzer ships its weights (``pretrained.pt``) in its wheel; RTVC's
``encoder.pt`` is the same model, embedded with partials at 50 % overlap instead of 1.3 per
second. The checkpoint is read by ``ge2e_jax.torch_checkpoint`` (no torch, nothing executed);
the architecture (cells, layers, embedding size, mels) comes from the tensors' shapes.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from ge2e_jax import features, model, torch_checkpoint

# format -> (the encoder config its shapes fill in, how it was published)
FORMATS = {
    "resemblyzer": model.RESEMBLYZER,
    # RTVC encoder/inference.py: partial_utterance_n_frames=160, overlap=0.5 -> a hop of 80
    # frames, i.e. SAMPLE_RATE / (80 * HOP_LENGTH) = 1.25 partials per second.
    "rtvc": dataclasses.replace(model.RESEMBLYZER,
                                partial_rate=features.SAMPLE_RATE / (80 * features.HOP_LENGTH)),
}


def read_state_dict(path: str | os.PathLike) -> dict:
  """The encoder's state dict (name -> float32 array) from a Resemblyzer/RTVC checkpoint."""
  checkpoint = torch_checkpoint.load(path)
  state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
  if not isinstance(state, dict) or "lstm.weight_ih_l0" not in state:
    keys = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
    raise ValueError(f"{os.fspath(path)}: expected a GE2E encoder checkpoint (a 'model_state' "
                     f"with lstm.weight_ih_l0, ...), found {keys}")
  return {k: np.asarray(v, np.float32) for k, v in state.items()}


def encoder_from_state_dict(state: dict, fmt: str, name: str = "checkpoint"):
  """(EncoderConfig, encoder params) of ``fmt``'s encoder holding ``state``'s weights.

  torch's LSTM computes x W_ih^T + b_ih + h W_hh^T + b_hh with gates in the order i, f, g, o,
  as ``model.LSTM`` does: its kernels are the transposes and its bias the sum of both.
  """
  if fmt not in FORMATS:
    raise ValueError(f"unknown checkpoint format {fmt!r}; expected one of {sorted(FORMATS)}")
  layers = 0
  while f"lstm.weight_ih_l{layers}" in state:
    layers += 1
  four_h, n_mels = state["lstm.weight_ih_l0"].shape
  missing = [k for k in ("linear.weight", "linear.bias") if k not in state]
  if missing or four_h % 4 or any(k.startswith("lstm.weight_hr") for k in state):
    raise ValueError(f"{name}: expected LSTM layers without projection and a linear head "
                     f"(missing {missing}); keys {sorted(state)[:12]}")
  cells = four_h // 4
  config = dataclasses.replace(FORMATS[fmt], cells=cells, layers=layers, n_mels=n_mels,
                               head=state["linear.weight"].shape[0])
  params = {}
  for i in range(layers):
    params[f"lstm_{i}"] = {
        "input_kernel": state[f"lstm.weight_ih_l{i}"].T,
        "recurrent_kernel": state[f"lstm.weight_hh_l{i}"].T,
        "bias": state[f"lstm.bias_ih_l{i}"] + state[f"lstm.bias_hh_l{i}"]}
  params["head"] = {"kernel": state["linear.weight"].T, "bias": state["linear.bias"]}
  expected = _shapes(jax.eval_shape(
      lambda: model.init_encoder_params(jax.random.key(0), config)))
  if _shapes(params) != expected:
    raise ValueError(f"{name}: tensor shapes {_shapes(params)} do not make the encoder "
                     f"{config} (expected {expected})")
  return config, {k: {n: np.ascontiguousarray(a, np.float32) for n, a in v.items()}
                  for k, v in params.items()}


def _shapes(tree) -> dict:
  return {k: {n: tuple(np.shape(a)) for n, a in v.items()} for k, v in tree.items()}


def load(path: str | os.PathLike, fmt: str):
  """(EncoderConfig, encoder params) of a Resemblyzer / RTVC checkpoint file."""
  return encoder_from_state_dict(read_state_dict(path), fmt, os.fspath(path))

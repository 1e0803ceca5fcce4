"""The export directory written by ``experiments/export.py``, read without TensorFlow.

Layout of an export dir:
  config.json           {"model": encoder config (model.config_to_dict), "export": metadata:
                        format, source workdir and step, sample rate, window/hop frames,
                        platforms, signature}
  params/               orbax checkpoint of {"encoder": encoder params}
  d_vector.jax_export   ``jax.export`` serialisation of waveform -> d-vectors (params inside)
  saved_model/          TensorFlow SavedModel (jax2tf) of the same function

Both serialised functions take float32 16 kHz waveforms of shape (batch, samples), every
row one whole utterance, already resampled and (if wanted) silence-trimmed, and return
(batch, D) float32 unit d-vectors: ``ge2e_jax.inference.embed_waveforms``.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from ge2e_jax import model

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"
JAX_EXPORT_FILE = "d_vector.jax_export"
SAVED_MODEL_DIR = "saved_model"
FORMAT = "ge2e_jax.export/1"


def abstract_encoder_params(config: model.EncoderConfig):
  """ShapeDtypeStructs of the encoder params of ``config``, on the default device."""
  shapes = jax.eval_shape(lambda: model.init_encoder_params(jax.random.key(0), config))
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def is_export_dir(path: str) -> bool:
  return (os.path.isfile(os.path.join(path, CONFIG_FILE))
          and os.path.isdir(os.path.join(path, PARAMS_DIR)))


def write_params(directory: str, config: model.EncoderConfig, encoder_params, metadata: dict):
  """Writes config.json and params/ into ``directory`` (which must exist)."""
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(os.path.abspath(directory), PARAMS_DIR),
                      {"encoder": encoder_params})
  values = {"model": model.config_to_dict(config), "export": {"format": FORMAT, **metadata}}
  with open(os.path.join(directory, CONFIG_FILE), "w") as f:
    json.dump(values, f, indent=2, sort_keys=True)


def read_config(directory: str) -> dict:
  """config.json of an export dir: {"model": encoder config dict, "export": metadata}."""
  config_path = os.path.join(directory, CONFIG_FILE)
  with open(config_path) as f:
    values = json.load(f)
  if "model" not in values or values.get("export", {}).get("format") != FORMAT:
    raise ValueError(f"{config_path} is not a ge2e_jax export config: expected keys 'model' and "
                     f"'export' with format {FORMAT!r}, got keys {sorted(values)}")
  return values


def read_export(directory: str):
  """(EncoderConfig, {"encoder": params}, export metadata) of an export dir."""
  values = read_config(directory)
  config = model.config_from_dict(values["model"])
  with ocp.StandardCheckpointer() as checkpointer:
    params = checkpointer.restore(os.path.join(os.path.abspath(directory), PARAMS_DIR),
                                  {"encoder": abstract_encoder_params(config)})
  return config, params, values["export"]


def write_jax_export(directory: str, exported: jax.export.Exported):
  with open(os.path.join(directory, JAX_EXPORT_FILE), "wb") as f:
    f.write(exported.serialize())


def load_jax_export(directory: str) -> Callable[[np.ndarray], np.ndarray]:
  """``fn(waveform (batch, samples) float32 16 kHz) -> (batch, D)`` from d_vector.jax_export.

  Needs only jax (no ge2e_jax model code, no TensorFlow) on one of the exported platforms.
  """
  path = os.path.join(directory, JAX_EXPORT_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {directory!r} an export dir written by "
                            "experiments.export?")
  with open(path, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  return lambda waveform: np.asarray(exported.call(np.asarray(waveform, np.float32)))

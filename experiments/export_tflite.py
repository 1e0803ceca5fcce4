"""On-device export: the d-vector function as a static-shape TFLite (LiteRT) model.

  python -m experiments.export --model=runs/td --tflite [--tflite_samples=0] [--tflite_batch=1]

writes ``d_vector.tflite`` into the export dir beside the SavedModel. Its one input is
``waveform`` float32 (batch, samples) of 16 kHz mono audio, both sizes fixed at export
(default: batch 1 and exactly one window of the model's ``window_frames``, the paper's
TD-SV setting of one fixed-length keyword utterance); its output is (batch, D) float32 unit
d-vectors: ``ge2e_jax.inference.embed_waveforms`` on that shape, log-mel, 50 %-overlap
windows and averaging included, with the params as constants.

Route: jax2tf (StableHLO in an XlaCallModule) -> ``tf.lite.TFLiteConverter`` with
TFLITE_BUILTINS only, float32, no quantisation. With static shapes every gather index is a
constant and the graph lowers to builtin ops (RFFT2D for the FFT, WHILE for the LSTMP
scan, FULLY_CONNECTED, GATHER_ND, ...), so the stock LiteRT interpreter runs it without
the Flex (SELECT_TF_OPS) delegate. The shape-polymorphic SavedModel does not convert: its
window gathers have dynamic indices. ``load`` runs the file with ``ai_edge_litert`` (the
LiteRT interpreter package; TensorFlow's own ``tf.lite.Interpreter`` is deprecated).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Callable

import jax
import numpy as np

from ge2e_jax import export_io, features, inference, model

TFLITE_FILE = "d_vector.tflite"


def input_samples(samples: int, window_frames: int) -> int:
  """The static input length: ``samples``, or one window of ``window_frames`` when 0."""
  samples = samples or features.samples_for_frames(window_frames)
  if samples < inference.MIN_SAMPLES:
    raise ValueError(f"tflite input of {samples} samples: need at least "
                     f"{inference.MIN_SAMPLES} (one 25 ms frame at 16 kHz)")
  return samples


def convert(config: model.EncoderConfig, encoder_params, *, window_frames: int,
            samples: int = 0, batch: int = 1) -> bytes:
  """The TFLite flatbuffer of waveform (batch, samples) -> (batch, D) d-vectors."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # optional: the export extra
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

  if batch < 1:
    raise ValueError(f"tflite batch must be >= 1, got {batch}")
  samples = input_samples(samples, window_frames)
  to_tf = jax2tf.convert(
      functools.partial(inference.embed_waveforms, config, window_frames=window_frames),
      with_gradient=False, native_serialization_platforms=("cpu",))
  module = tf.Module()
  module.params = jax.tree.map(lambda p: tf.constant(np.asarray(p)), encoder_params)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([batch, samples], tf.float32, name="waveform")])
  def serve(waveform):
    return {"d_vectors": to_tf(module.params, waveform)}

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [serve.get_concrete_function()], module)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  return converter.convert()


def add_to_export(directory: str, config: model.EncoderConfig, encoder_params,
                  window_frames: int, batch: int = 1, samples: int = 0) -> str:
  """Writes ``d_vector.tflite`` into an export dir and describes it in its config.json."""
  samples = input_samples(samples, window_frames)
  path = os.path.join(directory, TFLITE_FILE)
  with open(path, "wb") as f:
    f.write(convert(config, encoder_params, window_frames=window_frames, samples=samples,
                    batch=batch))
  config_path = os.path.join(directory, export_io.CONFIG_FILE)
  with open(config_path) as f:
    values = json.load(f)
  values["export"]["tflite"] = {
      "file": TFLITE_FILE, "batch": batch, "samples": samples, "window_frames": window_frames,
      "input": f"waveform float32 ({batch}, {samples}), 16 kHz mono, resampled and trimmed",
      "output": f"d_vectors float32 ({batch}, {model.embedding_dim(config)}), unit L2 norm",
      "ops": "TFLite builtins (no Flex delegate)"}
  with open(config_path, "w") as f:
    json.dump(values, f, indent=2, sort_keys=True)
  return path


def load(path: str, num_threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
  """``fn(waveform (batch, samples) float32) -> (batch, D)`` running a .tflite with LiteRT."""
  # optional: the tflite extra
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

  runner = litert.Interpreter(model_path=path, num_threads=num_threads)
  runner.allocate_tensors()
  (source,), (target,) = runner.get_input_details(), runner.get_output_details()
  shape = tuple(int(n) for n in source["shape"])

  def run(waveform):
    waveform = np.asarray(waveform, np.float32)
    if waveform.shape != shape:
      raise ValueError(f"{path} takes waveform of shape {shape} (static), got {waveform.shape}")
    runner.set_tensor(source["index"], waveform)
    runner.invoke()
    return runner.get_tensor(target["index"]).copy()

  return run

"""ONNX export: the d-vector function for ONNX Runtime (and Triton, OpenVINO, ... on top of it).

  python -m experiments.export --workdir=runs/td --onnx [--onnx_samples=0]

writes ``d_vector.onnx`` into the export dir. Its one input is ``waveform`` float32
(batch, samples): 16 kHz mono audio, one fixed-length window per row (default: exactly one
window of the model's ``window_frames``), the batch dynamic; its output ``d_vectors`` is
(batch, D) float32 unit d-vectors: ``ge2e_jax.inference.embed_waveforms`` on that row
length, log-mel frontend included, params as constants.

Route (chosen by measurement, BENCHMARKS.md "ONNX export"): jax2onnx converts the JAX
function itself, so every encoder ``embed_waveforms`` runs exports the same way. tf2onnx
cannot: the SavedModel holds the whole function as one ``XlaCallModule`` (jax2tf's only
serialisation), which it has no conversion for. jax2onnx 0.17 lowers the LSTMP scan to an
ONNX ``Loop`` and the FFT to ``DFT``, but not with a symbolic batch (its ``pad``, ``fft``
and complex-part lowerings need static shapes), so the function is converted for one row
and the graph runs it inside an outer ``Loop`` over the rows of the batch.

A dynamic number of samples is not offered for the same reason: the window gather's
indices would be symbolic. ``load`` runs the file with onnxruntime.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments import export_tflite
from ge2e_jax import export_io, inference, model, model_card

ONNX_FILE = "d_vector.onnx"
OPSET = 20  # DFT with the axis as an input (opset 20); ONNX Runtime >= 1.17
INPUT, OUTPUT = "waveform", "d_vectors"
PACKAGES = ("jax2onnx", "onnx", "onnxruntime")
INSTALL = ("pip install -e '.[onnx]' (or, keeping orbax-checkpoint as it is: "
           "pip install onnx onnx-ir onnxruntime && pip install --no-deps jax2onnx)")


def check_installed():
  """ValueError naming what to install when a package of the onnx extra is missing."""
  missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
  if missing:
    raise ValueError(f"--onnx needs {', '.join(missing)}: {INSTALL}")


def convert(config: model.EncoderConfig, encoder_params, *, window_frames: int,
            samples: int = 0) -> bytes:
  """The ONNX model of waveform (batch, samples) -> (batch, D) d-vectors, batch dynamic."""
  # jax2onnx's example plugins import equinox, dm_pix, ... (absent after `make onnx`) and log
  # a traceback for each; its lowerings of jax primitives do not need them.
  logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
  from jax2onnx import to_onnx  # pylint: disable=g-import-not-at-top  # optional: the onnx extra

  samples = export_tflite.input_samples(samples, window_frames)
  row = to_onnx(
      functools.partial(inference.embed_waveforms, config, encoder_params,
                        window_frames=window_frames),
      inputs=[jax.ShapeDtypeStruct((1, samples), jnp.float32)], model_name="d_vector_row",
      opset=OPSET, input_names=["row_waveform"], output_names=["row_d_vector"])
  return _over_rows(row, samples, config.projection).SerializeToString()


def _over_rows(row, samples: int, dim: int):
  """A model running the one-row graph ``row`` on each row of a (batch, samples) input.

  The row graph becomes the body of a ``Loop`` with the batch size as trip count; its
  initializers move to the outer graph, which the body reads by name.
  """
  import onnx  # pylint: disable=g-import-not-at-top  # optional: the onnx extra
  from onnx import TensorProto, helper  # pylint: disable=g-import-not-at-top

  (row_in,), (row_out,) = row.graph.input, row.graph.output
  body = helper.make_graph(
      [helper.make_node("Unsqueeze", ["loop_i", "loop_axis0"], ["loop_i1"]),
       helper.make_node("Gather", [INPUT, "loop_i1"], [row_in.name], axis=0),
       *row.graph.node,
       helper.make_node("Squeeze", [row_out.name, "loop_axis0"], ["loop_d_vector"]),
       helper.make_node("Identity", ["loop_cond"], ["loop_cond_out"])],
      "d_vector_of_row",
      [helper.make_tensor_value_info("loop_i", TensorProto.INT64, []),
       helper.make_tensor_value_info("loop_cond", TensorProto.BOOL, [])],
      [helper.make_tensor_value_info("loop_cond_out", TensorProto.BOOL, []),
       helper.make_tensor_value_info("loop_d_vector", TensorProto.FLOAT, [dim])])
  graph = helper.make_graph(
      [helper.make_node("Shape", [INPUT], ["rows_batch"], start=0, end=1),
       helper.make_node("Squeeze", ["rows_batch", "loop_axis0"], ["rows_trip_count"]),
       helper.make_node("Loop", ["rows_trip_count", ""], [OUTPUT], body=body)],
      "d_vector",
      [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", samples])],
      [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", dim])],
      initializer=[*row.graph.initializer,
                   helper.make_tensor("loop_axis0", TensorProto.INT64, [1], [0])])
  result = helper.make_model(graph, opset_imports=row.opset_import,
                             functions=row.functions, ir_version=row.ir_version,
                             producer_name=row.producer_name,
                             producer_version=row.producer_version)
  onnx.checker.check_model(result)
  return result


def add_to_export(directory: str, config: model.EncoderConfig, encoder_params,
                  window_frames: int, samples: int = 0) -> str:
  """Writes ``d_vector.onnx`` into an export dir; names it in config.json and the model card."""
  samples = export_tflite.input_samples(samples, window_frames)
  path = os.path.join(directory, ONNX_FILE)
  with open(path, "wb") as f:
    f.write(convert(config, encoder_params, window_frames=window_frames, samples=samples))
  described = {
      "file": ONNX_FILE, "samples": samples, "window_frames": window_frames, "opset": OPSET,
      "input": f"{INPUT} float32 (batch, {samples}), 16 kHz mono, resampled and trimmed; "
               "batch dynamic",
      "output": f"{OUTPUT} float32 (batch, {config.projection}), unit L2 norm",
      "converter": f"jax2onnx {importlib.metadata.version('jax2onnx')}"}
  config_path = os.path.join(directory, export_io.CONFIG_FILE)
  with open(config_path) as f:
    values = json.load(f)
  values["export"]["onnx"] = described
  with open(config_path, "w") as f:
    json.dump(values, f, indent=2, sort_keys=True)
  card = model_card.read(directory)
  if card is not None:
    card.setdefault("files", {})["onnx"] = described
    model_card.write(directory, card)
  return path


def load(path: str) -> Callable[[np.ndarray], np.ndarray]:
  """``fn(waveform (batch, samples) float32) -> (batch, D)`` running a .onnx with onnxruntime
  on the CPU (default threads)."""
  import onnxruntime  # pylint: disable=g-import-not-at-top  # optional: the onnx extra

  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  (source,) = session.get_inputs()
  samples = source.shape[1]

  def run(waveform):
    waveform = np.asarray(waveform, np.float32)
    if waveform.ndim != 2 or waveform.shape[1] != samples:
      raise ValueError(f"{path} takes {INPUT} of shape (batch, {samples}), got {waveform.shape}")
    return session.run([OUTPUT], {INPUT: waveform})[0]

  return run

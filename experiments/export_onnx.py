"""ONNX export: the d-vector function for ONNX Runtime (and Triton, OpenVINO, ... on top of it).

  python -m experiments.export --workdir=runs/td --onnx [--onnx_samples=0] [--onnx_rows=8]

writes ``d_vector.onnx`` into the export dir. Its one input is ``waveform`` float32
(batch, samples): 16 kHz mono audio, one fixed-length window per row (default: exactly one
window of the model's ``window_frames``), the batch dynamic; its output ``d_vectors`` is
(batch, D) float32 unit d-vectors: ``ge2e_jax.inference.embed_waveforms`` on that row
length, log-mel frontend included, params as constants.

Route (chosen by measurement, BENCHMARKS.md "ONNX export"): jax2onnx converts the JAX
function itself, so every encoder ``embed_waveforms`` runs exports the same way. tf2onnx
cannot: the SavedModel holds the whole function as one ``XlaCallModule`` (jax2tf's only
serialisation), which it has no conversion for. jax2onnx 0.17 lowers the LSTMP scan to an
ONNX ``Loop`` and the FFT to ``DFT``, but not with a symbolic batch (its ``pad`` and ``fft``
lowerings need static shapes; with both patched the graph still fails after ``real``), so
the function is converted for a static chunk of ``rows`` rows (``--onnx_rows``) and the
graph runs it inside an outer ``Loop`` over the batch, zero-padded to whole chunks.

A dynamic number of samples is not offered for the same reason: the number of windows, and
with it the FFT's input shape, would be symbolic. ``load`` runs the file with onnxruntime.
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
ROWS = 8  # rows per step of the graph's outer loop (BENCHMARKS.md: throughput vs one window)
PACKAGES = ("jax2onnx", "onnx", "onnx_ir", "onnxruntime")
INSTALL = ("pip install -e '.[onnx]' (or, keeping orbax-checkpoint as it is: "
           "pip install onnx onnx-ir onnxruntime && pip install --no-deps jax2onnx)")


def check_installed():
  """ValueError naming what to install when a package of the onnx extra is missing."""
  missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
  if missing:
    raise ValueError(f"--onnx needs {', '.join(missing)}: {INSTALL}")


def convert(config: model.EncoderConfig, encoder_params, *, window_frames: int,
            samples: int = 0, rows: int = ROWS) -> bytes:
  """The ONNX model of waveform (batch, samples) -> (batch, D) d-vectors, batch dynamic.

  ``rows``: rows encoded together per step of the outer loop (the batch is zero-padded to a
  multiple of it, the padding's d-vectors dropped).
  """
  # jax2onnx's example plugins import equinox, dm_pix, ... (absent after `make onnx`) and log
  # a traceback for each; its lowerings of jax primitives do not need them.
  logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
  from jax2onnx import to_onnx  # pylint: disable=g-import-not-at-top  # optional: the onnx extra

  if rows < 1:
    raise ValueError(f"onnx rows must be >= 1, got {rows}")
  samples = export_tflite.input_samples(samples, window_frames)
  chunk = to_onnx(
      functools.partial(inference.embed_waveforms, config, encoder_params,
                        window_frames=window_frames),
      inputs=[jax.ShapeDtypeStruct((rows, samples), jnp.float32)], model_name="d_vector_rows",
      opset=OPSET, input_names=["chunk_waveform"], output_names=["chunk_d_vectors"])
  return _over_chunks(chunk, rows, samples, model.embedding_dim(config)).SerializeToString()


def _over_chunks(chunk, rows: int, samples: int, dim: int):
  """A model running the static graph ``chunk`` ((rows, samples) -> (rows, dim)) on a
  (batch, samples) input, ``rows`` rows at a time.

  The batch is zero-padded to whole chunks and reshaped to (chunks, rows, samples); the chunk
  graph becomes the body of a ``Loop`` over them, its initializers move to the outer graph
  (the body reads them by name), and the padding rows are sliced off the result.
  """
  import onnx  # pylint: disable=g-import-not-at-top  # optional: the onnx extra
  from onnx import TensorProto, helper  # pylint: disable=g-import-not-at-top

  node = helper.make_node
  (chunk_in,), (chunk_out,) = chunk.graph.input, chunk.graph.output
  body = helper.make_graph(
      [node("Gather", ["rows_chunked", "loop_i"], [chunk_in.name], axis=0),
       *chunk.graph.node,
       node("Identity", ["loop_cond"], ["loop_cond_out"])],
      "d_vectors_of_chunk",
      [helper.make_tensor_value_info("loop_i", TensorProto.INT64, []),
       helper.make_tensor_value_info("loop_cond", TensorProto.BOOL, [])],
      [helper.make_tensor_value_info("loop_cond_out", TensorProto.BOOL, []),
       helper.make_tensor_value_info(chunk_out.name, TensorProto.FLOAT, [rows, dim])])
  const = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
  graph = helper.make_graph(
      [node("Shape", [INPUT], ["rows_batch"], start=0, end=1),
       node("Add", ["rows_batch", "rows_rows_less_1"], ["rows_ceil"]),
       node("Div", ["rows_ceil", "rows_rows"], ["rows_chunks"]),
       node("Mul", ["rows_chunks", "rows_rows"], ["rows_padded"]),
       node("Sub", ["rows_padded", "rows_batch"], ["rows_extra"]),
       node("Concat", ["rows_zero", "rows_zero", "rows_extra", "rows_zero"], ["rows_pads"],
            axis=0),
       node("Pad", [INPUT, "rows_pads"], ["rows_waveform"]),
       node("Concat", ["rows_chunks", "rows_chunk_shape"], ["rows_shape"], axis=0),
       node("Reshape", ["rows_waveform", "rows_shape"], ["rows_chunked"]),
       node("Squeeze", ["rows_chunks", "rows_zero"], ["rows_trip_count"]),
       node("Loop", ["rows_trip_count", ""], ["rows_stacked"], body=body),
       node("Reshape", ["rows_stacked", "rows_flat_shape"], ["rows_flat"]),
       node("Slice", ["rows_flat", "rows_zero", "rows_batch", "rows_zero"], [OUTPUT])],
      "d_vector",
      [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", samples])],
      [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", dim])],
      initializer=[*chunk.graph.initializer, const("rows_zero", [0]),
                   const("rows_rows", [rows]), const("rows_rows_less_1", [rows - 1]),
                   const("rows_chunk_shape", [rows, samples]),
                   const("rows_flat_shape", [-1, dim])])
  result = helper.make_model(graph, opset_imports=chunk.opset_import,
                             functions=chunk.functions, ir_version=chunk.ir_version,
                             producer_name=chunk.producer_name,
                             producer_version=chunk.producer_version)
  onnx.checker.check_model(result)
  return result


def add_to_export(directory: str, config: model.EncoderConfig, encoder_params,
                  window_frames: int, rows: int = ROWS, samples: int = 0) -> str:
  """Writes ``d_vector.onnx`` into an export dir; names it in config.json and the model card."""
  samples = export_tflite.input_samples(samples, window_frames)
  path = os.path.join(directory, ONNX_FILE)
  with open(path, "wb") as f:
    f.write(convert(config, encoder_params, window_frames=window_frames, samples=samples,
                    rows=rows))
  described = {
      "file": ONNX_FILE, "samples": samples, "window_frames": window_frames, "rows": rows,
      "opset": OPSET,
      "input": f"{INPUT} float32 (batch, {samples}), 16 kHz mono, resampled and trimmed; "
               "batch dynamic",
      "output": f"{OUTPUT} float32 (batch, {model.embedding_dim(config)}), unit L2 norm",
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

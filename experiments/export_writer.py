"""Writes an export dir (``ge2e_jax/export_io.py``) from an Embedder; no flags.

Shared by ``experiments/export.py`` (a training run's checkpoint) and
``experiments/import_encoder.py`` (a PyTorch encoder's weights): both write the same
params, config.json, model card, jax.export, SavedModel (and TFLite on request), staged in a
temporary directory beside the output and renamed into place. The checksum list of every
file in the staged dir (``export_io.write_checksums``) is written last, whatever files the
steps before wrote.
"""

import functools
import os
import secrets
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from experiments import export_onnx, export_tflite, output_paths
from ge2e_jax import export_io, inference, model_card
from ge2e_jax.features import SAMPLE_RATE

WAVEFORM_SPEC = "b, s"  # symbolic (batch, samples)
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def d_vector_fn(embedder: inference.Embedder):
  """waveform (batch, samples) -> (batch, D), the embedder's params baked in as constants."""
  return jax.jit(functools.partial(inference.embed_waveforms, embedder.config, embedder.params,
                                   window_frames=embedder.window_frames))


def export_jax(embedder: inference.Embedder, platforms) -> jax.export.Exported:
  waveform = jax.ShapeDtypeStruct(jax.export.symbolic_shape(WAVEFORM_SPEC), jnp.float32)
  return jax.export.export(d_vector_fn(embedder), platforms=platforms)(waveform)


def write_saved_model(directory: str, embedder: inference.Embedder, platforms):
  """SavedModel whose ``serving_default`` maps ``waveform`` to ``d_vectors``."""
  # TensorFlow only here: --help and the other artifacts do not pay for importing it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # optional: the export extra
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top

  to_tf = jax2tf.convert(functools.partial(inference.embed_waveforms, embedder.config,
                                           window_frames=embedder.window_frames),
                         polymorphic_shapes=[None, f"({WAVEFORM_SPEC})"], with_gradient=False,
                         native_serialization_platforms=tuple(platforms))
  module = tf.Module()
  # Params as variables, not graph constants: the GraphDef stays small for large encoders.
  module.params = jax.tree.map(lambda p: tf.Variable(np.asarray(p), trainable=False),
                               jax.device_get(embedder.params))

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None], tf.float32, name="waveform")])
  def serve(waveform):
    return {"d_vectors": to_tf(module.params, waveform)}

  module.serve = serve
  tf.saved_model.save(module, directory, signatures={"serving_default": serve})


def write_export(embedder: inference.Embedder, output: str, metadata: dict, card: dict,
                 platforms=("cpu", "cuda"), tflite_shape: tuple[int, int] | None = None,
                 onnx_shape: tuple[int, int] | None = None) -> str:
  """Writes ``embedder``'s export dir to ``output`` (staged beside it, renamed into place).

  ``metadata`` (where the params came from) joins the export metadata in config.json;
  ``card`` is its model_card.json. ``tflite_shape`` (batch, samples; samples 0 = one window)
  adds ``d_vector.tflite``, ``onnx_shape`` (rows per step, row length; 0 = one window)
  ``d_vector.onnx``.
  """
  os.makedirs(os.path.dirname(output), exist_ok=True)
  staging = _new_dir_beside(output)
  try:
    metadata = {
        **metadata, "platforms": list(platforms),
        "sample_rate": SAMPLE_RATE, "window_frames": embedder.window_frames,
        "hop_frames": embedder.hop_frames,
        "signature": {"input": "waveform float32 (batch, samples), 16 kHz mono",
                      "output": f"d_vectors float32 (batch, {embedder.dim}), unit L2 norm"}}
    params = jax.device_get(embedder.params)
    export_io.write_params(staging, embedder.config, params, metadata)
    model_card.write(staging, card)
    export_io.write_jax_export(staging, export_jax(embedder, platforms))
    write_saved_model(os.path.join(staging, export_io.SAVED_MODEL_DIR), embedder, platforms)
    if tflite_shape is not None:
      export_tflite.add_to_export(staging, embedder.config, params, embedder.window_frames,
                                  *tflite_shape)
    if onnx_shape is not None:
      export_onnx.add_to_export(staging, embedder.config, params, embedder.window_frames,
                                *onnx_shape)
    export_io.write_checksums(staging)  # last: it lists every file written above
    _replace_dir(staging, output)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return output


def check_output(output: str, workdir: str, overwrite: bool, inputs=()):
  """Refuses an output that is or holds an input, is, holds or lies inside the workdir's own
  files (``output_paths.check``), and replacing anything but an export dir."""
  output_paths.check("--output", output, inputs=inputs, models=[workdir])
  if os.path.lexists(output):
    if not overwrite:
      raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    if not export_io.is_export_dir(output):
      raise FileExistsError(f"{output} exists and is not an export dir (config.json + params/):"
                            " --overwrite replaces only an earlier export")


def _new_dir_beside(output: str) -> str:
  """A new empty directory next to ``output``, with the umask's permissions (mkdtemp: 0700)."""
  while True:
    path = os.path.join(os.path.dirname(output),
                        f".{os.path.basename(output)}.tmp-{secrets.token_hex(4)}")
    try:
      os.mkdir(path)
      return path
    except FileExistsError:
      continue


def _replace_dir(new: str, target: str):
  if not os.path.exists(target):
    os.rename(new, target)
    return
  old = f"{new}.old"
  os.rename(target, old)
  os.rename(new, target)
  shutil.rmtree(old)



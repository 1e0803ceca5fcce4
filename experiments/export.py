"""Export a trained speaker encoder for serving: SavedModel, jax.export artifact, params.

  python -m experiments.export --workdir=runs/td [--output=runs/td/export] [--which=best]

Writes the export dir described in ``ge2e_jax/export_io.py``:
  saved_model/          TensorFlow SavedModel (jax2tf, native serialisation); loads with plain
                        TensorFlow, no jax or ge2e_jax needed. Signature ``serving_default``:
                        input ``waveform`` float32 (batch, samples), output ``d_vectors``
                        float32 (batch, D); batch and samples are both polymorphic.
  d_vector.jax_export   the same function as ``jax.export`` bytes; call it with
                        ``ge2e_jax.export_io.load_jax_export(dir)`` (jax only).
  params/, config.json  so ``ge2e_jax.inference.load(dir)`` works too.
  d_vector.tflite       with --tflite: a static-shape LiteRT model for phones
                        (``experiments/export_tflite.py``).
  d_vector.onnx         with --onnx: an ONNX model for ONNX Runtime, dynamic batch of
                        fixed-length windows (``experiments/export_onnx.py``, docs/onnx.md).

The graph holds log-mel, 160-frame windows (the workdir's ``eval.window_frames``) with 50 % overlap (plus an end-aligned last
window; one repeat-padded window for short input), per-window normalisation, averaging and
the final normalisation (``ge2e_jax.inference.embed_waveforms``). It expects 16 kHz mono
audio, one whole utterance per row: resampling and silence trimming happen before it, on
the host (``ge2e_jax.inference.Embedder.prepare`` does both). Rows of one call share one
length; embed utterances of different lengths in separate calls.

The export is written to a temporary directory beside ``--output`` and renamed into place,
so a failed export leaves no partial directory behind; its files get the permissions the
umask gives. ``--overwrite`` replaces only an export dir, and no ``--output`` may be, hold
or lie inside the workdir's checkpoints or config: an export never deletes a training run.
"""

import functools
import os
import secrets
import shutil

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import cli, export_onnx, export_tflite
from ge2e_jax import checkpoint, export_io, inference, model, model_card
from ge2e_jax.features import SAMPLE_RATE

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir (config.json + checkpoints/).")
flags.DEFINE_string("output", None, "Export directory; default <workdir>/export.")
flags.DEFINE_enum("which", "best", ["best", "latest"],
                  "Checkpoint to export: lowest eval EER (latest if none scored) or newest.")
flags.DEFINE_list("platforms", ["cpu", "cuda"],
                  "Platforms the serialised functions are lowered for (cpu, cuda, rocm, tpu).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export directory.")
flags.DEFINE_bool("tflite", False, "Also write d_vector.tflite, a static-shape LiteRT model "
                  "for on-device use (experiments/export_tflite.py).")
flags.DEFINE_integer("tflite_samples", 0, "Its fixed input length in 16 kHz samples; "
                     "0 = one window of the model's window_frames.")
flags.DEFINE_integer("tflite_batch", 1, "Its fixed batch size.")
flags.DEFINE_bool("onnx", False, "Also write d_vector.onnx for ONNX Runtime: a dynamic batch of "
                  "fixed-length windows (experiments/export_onnx.py; needs the onnx extra).")
flags.DEFINE_integer("onnx_samples", 0, "Its fixed row length in 16 kHz samples; "
                     "0 = one window of the model's window_frames.")
flags.DEFINE_integer("onnx_rows", export_onnx.ROWS, "Rows its graph encodes together (the "
                     "batch is padded to a multiple): 1 for the lowest latency on one window.")
flags.mark_flag_as_required("workdir")
flags.register_validator("onnx_rows", lambda v: v >= 1, "--onnx_rows must be >= 1")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
flags.register_validator("platforms", lambda v: bool(v) and set(v) <= set(PLATFORMS),
                         f"--platforms must name some of {', '.join(PLATFORMS)}")

WAVEFORM_SPEC = "b, s"  # symbolic (batch, samples)


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
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
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


def export_model(workdir: str, output: str | None = None, which: str = "best",
                 platforms=("cpu", "cuda"), overwrite: bool = False,
                 tflite_shape: tuple[int, int] | None = None,
                 onnx_shape: tuple[int, int] | None = None) -> str:
  """Writes the export dir of ``workdir``'s ``which`` checkpoint; returns its path.

  ``tflite_shape`` (batch, samples; samples 0 = one window) adds ``d_vector.tflite``,
  ``onnx_shape`` (rows per step, row length; 0 = one window) ``d_vector.onnx``.
  """
  output = os.path.abspath(output or os.path.join(workdir, "export"))
  _check_output(output, workdir, overwrite)
  if onnx_shape is not None:
    export_onnx.check_installed()  # before the minutes of the other artifacts
  embedder = inference.load(workdir, which)  # checks config and params agree
  os.makedirs(os.path.dirname(output), exist_ok=True)
  staging = _new_dir_beside(output)
  try:
    metadata = {
        "source": embedder.source, "which": which, "platforms": list(platforms),
        "sample_rate": SAMPLE_RATE, "window_frames": embedder.window_frames,
        "hop_frames": embedder.window_frames // 2,
        "signature": {"input": "waveform float32 (batch, samples), 16 kHz mono",
                      "output": f"d_vectors float32 (batch, {embedder.dim}), unit L2 norm"}}
    params = jax.device_get(embedder.params)
    export_io.write_params(staging, embedder.config, params, metadata)
    model_card.write(staging, model_card.for_step(embedder.card, embedder.step,  # thresholds
                                                  embedder.window_frames,
                                                  model.config_to_dict(embedder.config)))
    export_io.write_jax_export(staging, export_jax(embedder, platforms))
    write_saved_model(os.path.join(staging, export_io.SAVED_MODEL_DIR), embedder, platforms)
    if tflite_shape is not None:
      export_tflite.add_to_export(staging, embedder.config, params, embedder.window_frames,
                                  *tflite_shape)
    if onnx_shape is not None:
      export_onnx.add_to_export(staging, embedder.config, params, embedder.window_frames,
                                *onnx_shape)
    _replace_dir(staging, output)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return output


def _check_output(output: str, workdir: str, overwrite: bool):
  """Refuses an output that is, holds or lies inside the workdir's checkpoints or config, and
  replacing anything but an export dir."""
  real = os.path.realpath(output)
  for kept in (checkpoint.CHECKPOINT_DIR, checkpoint.CONFIG_FILE):
    protected = os.path.realpath(os.path.join(workdir, kept))
    if os.path.commonpath([real, protected]) in (real, protected):
      raise ValueError(f"--output={output} is, holds or lies inside the training run's "
                       f"{protected}; choose another --output (the default is <workdir>/export)")
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  tflite_shape = (FLAGS.tflite_batch, FLAGS.tflite_samples) if FLAGS.tflite else None
  onnx_shape = (FLAGS.onnx_rows, FLAGS.onnx_samples) if FLAGS.onnx else None
  with cli.one_line_errors("export failed"):
    output = export_model(FLAGS.workdir, FLAGS.output, FLAGS.which, FLAGS.platforms,
                          FLAGS.overwrite, tflite_shape, onnx_shape)
  logging.info("exported %s to %s", FLAGS.workdir, output)
  print(output)


def run():
  """The ``ge2e-export`` console script (setup.cfg)."""
  app.run(main)


if __name__ == "__main__":
  run()

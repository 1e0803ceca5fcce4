"""Export a trained speaker encoder for serving: SavedModel, jax.export artifact, params.

  python -m experiments.export --model=runs/td [--output=runs/td/export] [--which=best]

``--model`` is the training workdir (``--workdir`` is an alias, its earlier name).

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

import os

from absl import app, flags, logging

from experiments import cli, export_onnx
from experiments.export_writer import PLATFORMS, check_output, write_export
from ge2e_jax import inference, model, model_card

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir to export (config.json + checkpoints/).")
flags.DEFINE_alias("workdir", "model")
flags.DEFINE_string("output", None, "Export directory; default <model>/export.")
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
                     "batch is padded to a multiple): 1 for the lowest latency on one window.",
                     lower_bound=1)
flags.mark_flag_as_required("model")
flags.register_validator("platforms", lambda v: bool(v) and set(v) <= set(PLATFORMS),
                         f"--platforms must name some of {', '.join(PLATFORMS)}")


def export_model(workdir: str, output: str | None = None, which: str = "best",
                 platforms=("cpu", "cuda"), overwrite: bool = False,
                 tflite_shape: tuple[int, int] | None = None,
                 onnx_shape: tuple[int, int] | None = None) -> str:
  """Writes the export dir of ``workdir``'s ``which`` checkpoint; returns its path.

  ``tflite_shape`` (batch, samples; samples 0 = one window) adds ``d_vector.tflite``,
  ``onnx_shape`` (rows per step, row length; 0 = one window) ``d_vector.onnx``.
  """
  output = os.path.abspath(output or os.path.join(workdir, "export"))
  check_output(output, workdir, overwrite)
  if onnx_shape is not None:
    export_onnx.check_installed()  # before the minutes of the other artifacts
  embedder = inference.load(workdir, which)  # checks config and params agree
  card = model_card.for_step(embedder.card, embedder.step, embedder.window_frames,  # thresholds
                             model.config_to_dict(embedder.config))
  return write_export(embedder, output, {"source": embedder.source, "which": which}, card,
                      platforms, tflite_shape, onnx_shape)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.require("export", "tensorflow", "export", "for saved_model/")
  tflite_shape = (FLAGS.tflite_batch, FLAGS.tflite_samples) if FLAGS.tflite else None
  onnx_shape = (FLAGS.onnx_rows, FLAGS.onnx_samples) if FLAGS.onnx else None
  with cli.one_line_errors("export failed"):
    output = export_model(FLAGS.model, FLAGS.output, FLAGS.which, FLAGS.platforms,
                          FLAGS.overwrite, tflite_shape, onnx_shape)
  logging.info("exported %s to %s", FLAGS.model, output)
  print(output)


def run():
  """The ``ge2e-export`` console script (setup.cfg)."""
  cli.run(main, "export")


if __name__ == "__main__":
  run()

r"""Import a PyTorch GE2E speaker encoder (Resemblyzer, Real-Time-Voice-Cloning) as an export.

  python -m experiments.import_encoder --format=resemblyzer \
      --checkpoint=third_party/resemblyzer/resemblyzer/pretrained.pt \
      --output=runs/pretrained/resemblyzer \
      --conditions=synthetic_voices/td_ok_computer:test_unseen_lang --data_dir=runs/tfds

The checkpoint is read without torch and without running its pickle
(``ge2e_jax.torch_checkpoint``); its tensors fill the encoder variant that computes what the
original does (``ge2e_jax.pretrained``: LSTM without projection, ReLU head, mel power with
librosa's filters, -30 dBFS, Resemblyzer's partial windows). The output is a normal export
dir (``experiments/export.py``: params, config.json, jax.export, SavedModel, TFLite with
--tflite), so ``experiments.embed``/``verify``/``evaluate`` and ``train.init_from`` take it
like a trained model's. Its ``model_card.json`` names the source, its licence and training
data as published, and holds the EER and thresholds this import measured on each of
--conditions (held-out corpora prepared here; the first is the operating point ``verify``
uses), never numbers copied from elsewhere.
"""

import os

from absl import app, flags, logging
import jax

from experiments import cli, export_onnx, export_writer, held_out
from ge2e_jax import export_io, inference, model, model_card, pretrained

FLAGS = flags.FLAGS
flags.DEFINE_enum("format", None, sorted(pretrained.FORMATS),
                  "Checkpoint format: resemblyzer (its wheel's pretrained.pt) or rtvc "
                  "(Real-Time-Voice-Cloning's encoder.pt).")
flags.DEFINE_string("checkpoint", None, "The PyTorch checkpoint file (read without torch).")
flags.DEFINE_string("output", None, "Export directory to write.")
flags.DEFINE_bool("overwrite", False, "Replace an existing export directory.")
flags.DEFINE_list("platforms", ["cpu", "cuda"], "Platforms of the serialised functions "
                  f"({', '.join(export_writer.PLATFORMS)}).")
flags.DEFINE_bool("tflite", False, "Also write d_vector.tflite (one window, batch 1).")
flags.DEFINE_bool("onnx", False, "Also write d_vector.onnx (a dynamic batch of one-window rows; "
                  "needs the onnx extra).")
flags.DEFINE_string("conditions", "", "Held-out conditions measured for the model card's "
                    "thresholds: 'tfds_name:split[+channel]', comma-separated (the first is the "
                    "operating point); '' writes a card without thresholds.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir of the --conditions corpora.")
flags.DEFINE_integer("num_enroll", 3, "Enrolment utterances per speaker in those evaluations.")
flags.DEFINE_integer("max_utterances_per_speaker", 20, "Cap on utterances read per speaker.")
flags.mark_flags_as_required(["format", "checkpoint", "output"])
flags.register_validator("platforms", lambda v: bool(v) and set(v) <= set(export_writer.PLATFORMS),
                         f"--platforms must name some of {', '.join(export_writer.PLATFORMS)}")

# What the model card says about each format's weights (as their publishers describe them).
SOURCES = {
    "resemblyzer": {
        "name": "Resemblyzer VoiceEncoder (resemblyzer 0.1.4 on PyPI, pretrained.pt in the wheel)",
        "url": "https://github.com/resemble-ai/Resemblyzer",
        "licence": "Apache-2.0 (the resemblyzer wheel and its pretrained.pt)",
        "training_data": ("real speech: LibriSpeech (train-other), VoxCeleb1 and VoxCeleb2, as the "
                          "Real-Time-Voice-Cloning encoder it comes from is described by its author "
                          "(C. Jemine, 'Real-Time Voice Cloning', 2019); the wheel itself does not "
                          "state it"),
    },
    "rtvc": {
        "name": "Real-Time-Voice-Cloning speaker encoder (encoder.pt)",
        "url": "https://github.com/CorentinJ/Real-Time-Voice-Cloning",
        "licence": "MIT (the Real-Time-Voice-Cloning repository); check the terms of the "
                   "checkpoint you hold",
        "training_data": ("as published by whoever trained this checkpoint; the repository's own "
                          "pretrained encoder: LibriSpeech (train-other), VoxCeleb1 and VoxCeleb2"),
    },
}


def measure(embedder: inference.Embedder, card: dict, conditions: str, data_dir: str | None,
            enroll: int, max_utterances: int) -> dict:
  """``card`` with one evaluation per condition (the first marked as the operating point)."""
  for i, (corpus, split, channel, _) in enumerate(held_out.parse_conditions(conditions)):
    if corpus is None:
      raise ValueError(f"--conditions: {split!r} names no corpus; expected tfds_name:split")
    eval_set = held_out.load_eval_set(corpus, split, data_dir=data_dir, enroll=enroll,
                                        max_utterances_per_speaker=max_utterances)
    eval_set = held_out.with_channel(eval_set, channel, seed=0)
    summary, _ = held_out.score(held_out.embed(eval_set, embedder), eval_set.speakers,
                                  enroll)
    entry = model_card.evaluation(summary, step=None, data=eval_set.description,
                                  condition=f"held-out corpus (import_encoder, enroll={enroll})")
    card = model_card.add_evaluation(card, entry, operating_point=i == 0)
    logging.info("EER %.2f%% on %s", 100 * summary["eer"], eval_set.description)
    print(f"EER {100 * summary['eer']:.2f}% minDCF(0.01) {summary['min_dcf']:.4f} on "
          f"{eval_set.description}, {summary['trials']} trials")
  return card


def import_encoder(fmt: str, checkpoint: str, output: str, *, overwrite: bool = False,
                   platforms=("cpu", "cuda"), tflite: bool = False, onnx: bool = False,
                   conditions: str = "",
                   data_dir: str | None = None, enroll: int = 3,
                   max_utterances: int = 20) -> str:
  """Writes the export dir of ``checkpoint`` to ``output``; returns its path."""
  output = os.path.abspath(output)
  export_writer.check_output(output, os.path.dirname(os.path.abspath(checkpoint)), overwrite,
                             inputs=[checkpoint, data_dir])
  if onnx:
    export_onnx.check_installed()  # before the evaluations and the other artifacts
  config, params = pretrained.load(checkpoint, fmt)
  embedder = inference.Embedder(config, jax.device_put(params), source=f"{fmt} {checkpoint}")
  source = {**SOURCES[fmt], "format": fmt, "file": os.path.abspath(checkpoint),
            "sha256": export_io.sha256(checkpoint)}
  card = model_card.new(None, embedder.window_frames, model.config_to_dict(config),
                        training={"imported": source})
  card["model"]["hop_frames"] = embedder.hop_frames
  card = measure(embedder, card, conditions, data_dir, enroll, max_utterances)
  return export_writer.write_export(embedder, output, {"source": source["file"], "imported": fmt},
                                    card, platforms, (1, 0) if tflite else None,
                                    (export_onnx.ROWS, 0) if onnx else None)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.require("import_encoder", "tensorflow", "export", "for saved_model/")
  with cli.one_line_errors("import_encoder"):
    output = import_encoder(FLAGS.format, FLAGS.checkpoint, FLAGS.output,
                            overwrite=FLAGS.overwrite, platforms=FLAGS.platforms,
                            tflite=FLAGS.tflite, onnx=FLAGS.onnx, conditions=FLAGS.conditions,
                            data_dir=FLAGS.data_dir, enroll=FLAGS.num_enroll,
                            max_utterances=FLAGS.max_utterances_per_speaker)
  print(output)


def run():
  cli.run(main, "import_encoder", renamed={"enroll": "num_enroll"})


if __name__ == "__main__":
  run()

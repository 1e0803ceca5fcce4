"""Evaluate a trained model on held-out speakers (SPEC.md §5): EER, minDCF, DET and 2-D plots.

  python -m experiments.evaluate --model=runs/td [--split=test] [--output_dir=runs/td/eval]

--model is a training workdir or an export dir. The evaluation data default to the
workdir config's evaluation source and split; --tfds_name/--data_dir pick another corpus,
e.g. one synthesised by a TTS engine kept out of training. Writes ``eval.json`` (summary),
``det.png`` (DET curve) and ``embeddings_2d.png`` (PCA of the evaluation speakers'
d-vectors), and prints one summary line.
"""

import json
import os

from absl import app, flags
import numpy as np

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir or export dir.")
flags.DEFINE_enum("which", "best", ["best", "latest"], "Workdir checkpoint to evaluate.")
flags.DEFINE_string("tfds_name", None, "TFDS name of the evaluation corpus "
                    "(default: the workdir config's eval source).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: the workdir config's).")
flags.DEFINE_string("split", "test", "Split of held-out speakers.")
flags.DEFINE_integer("enroll", 3, "Enrollment utterances per speaker.")
flags.DEFINE_integer("max_utterances_per_speaker", 20, "Cap on utterances read per speaker.")
flags.DEFINE_integer("window_frames", None, "Sliding-window length (default: the model's).")
flags.DEFINE_integer("seed", 0, "Seed of the enrollment choice.")
flags.DEFINE_string("output_dir", None, "Where to write eval.json and the plots "
                    "(default: <model>/eval).")
flags.DEFINE_integer("plot_speakers", 10, "Speakers shown in the 2-D projection.")
flags.mark_flag_as_required("model")
flags.register_validator("enroll", lambda v: v >= 1, "--enroll must be >= 1")
flags.register_multi_flags_validator(
    ["enroll", "max_utterances_per_speaker"],
    lambda f: f["max_utterances_per_speaker"] > f["enroll"],
    "--max_utterances_per_speaker must be larger than --enroll (some utterances are tested)")
flags.register_validator("window_frames", lambda v: v is None or (v >= 2 and v % 2 == 0),
                         "--window_frames must be an even number >= 2")
flags.register_validator("plot_speakers", lambda v: v >= 1, "--plot_speakers must be >= 1")


def _eval_source(model_dir: str):
  """(tfds name, data_dir) of the workdir config's evaluation source, if it has one."""
  from experiments.sources import parse_sources  # pylint: disable=g-import-not-at-top
  path = os.path.join(model_dir, "config.json")
  if not os.path.exists(path):
    return None, None
  with open(path) as f:
    config = json.load(f)
  if "data" not in config or "eval" not in config:
    return None, None
  sources = parse_sources(config["data"]["sources"])
  return sources.get(config["eval"]["source"]), config["data"].get("data_dir") or None


def plot_det(far, frr, eer, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from scipy.stats import norm  # pylint: disable=g-import-not-at-top
  clip = lambda p: norm.ppf(np.clip(p, 1e-4, 1 - 1e-4))
  ticks = np.array([0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.plot(clip(far), clip(frr), label="DET")
  ax.plot(clip(eer), clip(eer), "o", label=f"EER {100 * eer:.2f}%")
  ax.set_xticks(clip(ticks), [f"{100 * t:g}" for t in ticks])
  ax.set_yticks(clip(ticks), [f"{100 * t:g}" for t in ticks])
  ax.set_xlim(clip(0.0005), clip(0.6))
  ax.set_ylim(clip(0.0005), clip(0.6))
  ax.set_xlabel("false acceptance rate (%)")
  ax.set_ylabel("false rejection rate (%)")
  ax.grid(True, alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_projection(embeddings, speakers, max_speakers, path):
  """PCA to 2-D of the d-vectors of the first ``max_speakers`` speakers, one colour each."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  shown = sorted(set(speakers))[:max_speakers]
  keep = np.isin(speakers, shown)
  x = embeddings[keep] - embeddings[keep].mean(0)
  _, _, vt = np.linalg.svd(x, full_matrices=False)
  xy = x @ vt[:2].T
  fig, ax = plt.subplots(figsize=(6, 5))
  for speaker in shown:
    rows = speakers[keep] == speaker
    ax.scatter(xy[rows, 0], xy[rows, 1], s=14, label=speaker)
  ax.set_title("evaluation speakers' d-vectors (PCA)")
  ax.legend(fontsize=6, loc="best", ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with cli.one_line_errors("evaluate"):
    evaluate()


def evaluate():
  """Evaluates --model per the flags; writes and prints the summary."""
  from experiments import evaluation  # pylint: disable=g-import-not-at-top
  from ge2e_jax import inference, metrics  # pylint: disable=g-import-not-at-top

  options = {} if FLAGS.window_frames is None else {"window_frames": FLAGS.window_frames}
  embedder = inference.load(FLAGS.model, FLAGS.which, **options)
  tfds_name, data_dir = _eval_source(FLAGS.model)
  tfds_name, data_dir = FLAGS.tfds_name or tfds_name, FLAGS.data_dir or data_dir
  if tfds_name is None:
    raise ValueError(f"{FLAGS.model} names no evaluation corpus: pass --tfds_name")
  eval_set = evaluation.load_eval_set(tfds_name, FLAGS.split, data_dir=data_dir,
                                      enroll=FLAGS.enroll,
                                      max_utterances_per_speaker=FLAGS.max_utterances_per_speaker)
  embeddings = evaluation.embed(eval_set, embedder.config, embedder.params,
                                embedder.window_frames)
  summary, trials = evaluation.score(embeddings, eval_set.speakers, FLAGS.enroll, FLAGS.seed)
  summary.update(model=embedder.source, data=eval_set.description, enroll=FLAGS.enroll,
                 window_frames=embedder.window_frames)
  output_dir = FLAGS.output_dir or os.path.join(FLAGS.model, "eval")
  os.makedirs(output_dir, exist_ok=True)
  far, frr, _ = metrics.det_curve(trials.scores, trials.labels)
  plot_det(far, frr, summary["eer"], os.path.join(output_dir, "det.png"))
  plot_projection(embeddings, eval_set.speakers, FLAGS.plot_speakers,
                  os.path.join(output_dir, "embeddings_2d.png"))
  with open(os.path.join(output_dir, "eval.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(f"EER {100 * summary['eer']:.2f}% minDCF(0.01) {summary['min_dcf']:.4f} on "
        f"{eval_set.description}, {summary['trials']} trials; model {embedder.source}; "
        f"wrote {output_dir}")


if __name__ == "__main__":
  app.run(main)

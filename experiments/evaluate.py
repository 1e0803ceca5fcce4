"""Evaluate a trained model on held-out speakers (Wan et al. 2018, §3): EER, minDCF, DET, 2-D.

  python -m experiments.evaluate --model=runs/td [--split=test] [--output_dir=runs/td/eval]
  python -m experiments.evaluate --model=runs/td --split=test_unseen_lang --channel=noise_snr5..15

--model is a training workdir or an export dir. The evaluation data default to the
workdir config's evaluation source and split; --tfds_name/--data_dir pick another corpus,
e.g. one synthesised by a TTS engine kept out of training; --channel passes the split's
audio through noise, reverberation or a telephone channel first
(``experiments.conditions.apply_condition``; outputs go to ``<model>/eval_<split>+<channel>``).
Writes ``eval.json`` (summary), ``det.png`` (DET curve) and ``embeddings_2d.png`` (PCA of
the evaluation speakers' d-vectors), adds the evaluation to the model's ``model_card.json``
and prints one summary line.

Your own trials (no TFDS build needed), trimmed like ``experiments.verify`` trims:

  python -m experiments.evaluate --model=runs/td/export --trials=list.txt --audio_root=wavs/
  python -m experiments.evaluate --model=runs/td/export --speaker_dir=my_speakers/ --num_enroll=3

--trials is a VoxCeleb-style list (``label enrol_path test_path``, label 1/0); --speaker_dir
a tree with one folder per speaker (``experiments/trial_lists.py``). They write ``eval.json``
(EER, minDCF, the EER threshold and the threshold at --far_target), ``scores.tsv`` and
``det.png`` to ``<model>/eval_<list or folder name>`` and add the evaluation to the model's
``model_card.json``. --calibrate also fits ``llr = a * score + b`` (logistic, scipy) on these
trials and makes this evaluation the card's operating point: ``experiments.verify`` then
uses its threshold and calibration. --score_norm=asnorm --cohort=<npz or folder> scores with
adaptive s-norm (top --top_k cohort scores per side).
"""

import json
import os
import sys

from absl import app, flags
import numpy as np
from scipy.stats import norm

from experiments import cli, held_out, output_paths, run_settings, trial_lists
from ge2e_jax import (audio, export_io, inference, metrics, model, model_card, scoring,
                      settings)

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir or export dir.")
flags.DEFINE_enum("which", "best", ["best", "latest"], "Workdir checkpoint to evaluate.")
flags.DEFINE_string("tfds_name", None, "TFDS name of the evaluation corpus "
                    "(default: the workdir config's eval source).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: the workdir config's).")
flags.DEFINE_string("split", run_settings.EvalOptions.split, "Split of held-out speakers.")
flags.DEFINE_string("channel", "", "Score the split through this channel (e.g. noise_snr5..15, "
                    "reverb, telephone; experiments.conditions.apply_condition), seeded by --seed.")
# The held-out fields of a training run's config.eval: default, help and check from there.
_EVAL_FLAGS = {"enroll": "num_enroll", "max_utterances_per_speaker": "max_utterances_per_speaker",
               "window_frames": "window_frames"}
_EVAL_HELP = settings.help_text(run_settings.EvalOptions)
flags.DEFINE_integer("num_enroll", run_settings.EvalOptions.enroll, _EVAL_HELP["enroll"] + ".")
flags.DEFINE_integer("max_utterances_per_speaker",
                     run_settings.EvalOptions.max_utterances_per_speaker,
                     _EVAL_HELP["max_utterances_per_speaker"] + ".")
flags.DEFINE_integer("window_frames", None, "Sliding-window length (default: the model's).")
flags.DEFINE_enum("window_rule", None, model.WINDOW_RULES,
                  "How utterances are cut into windows (default: the model's).")
flags.DEFINE_integer("seed", 0, "Seed of the enrollment choice.")
flags.DEFINE_string("output_dir", None, "Where to write eval.json and the plots "
                    "(default: <model>/eval).")
flags.DEFINE_integer("plot_speakers", 10, "Speakers shown in the 2-D projection.")
flags.DEFINE_string("trials", None, "Trial list: 'label enrol_path test_path' lines.")
flags.DEFINE_string("audio_root", None, "Folder the --trials paths are relative to.")
flags.DEFINE_string("speaker_dir", None, "Folder with one sub-folder of audio per speaker.")
flags.DEFINE_bool("calibrate", False, "Fit a logistic calibration on these (development) "
                  "trials and make their thresholds the model card's operating point.")
flags.DEFINE_enum("score_norm", "none", ["none", "asnorm"], "Score normalisation.")
flags.DEFINE_string("cohort", None, "AS-norm cohort: an npz with 'embeddings' or a folder.")
flags.DEFINE_integer("top_k", scoring.DEFAULT_TOP_K, "AS-norm: cohort scores kept per side.")
flags.DEFINE_float("far_target", 0.01, "False-accept rate of the second threshold reported.")
flags.DEFINE_bool("skip_unreadable", False, "Leave out (and report) unreadable audio files "
                  "and their trials instead of failing.")
flags.DEFINE_bool("plots", True, "Write det.png (and embeddings_2d.png); needs matplotlib "
                  "(pip install 'ge2e_jax[plots]').")
flags.mark_flag_as_required("model")
cli.define_quiet_flag()
flags.register_validator("plot_speakers", lambda v: v >= 1, "--plot_speakers must be >= 1")


@flags.multi_flags_validator(list(_EVAL_FLAGS.values()))
def _check_eval_flags(values):
  """config.eval's checks (``run_settings.EvalOptions``), naming the flags."""
  fields = {field: values[flag] for field, flag in _EVAL_FLAGS.items()
            if values[flag] is not None}
  try:
    run_settings.EvalOptions(**fields)
  except settings.SettingError as err:
    message = str(err)
    for field, flag in _EVAL_FLAGS.items():
      message = message.replace(f"config.eval.{field}=", f"--{flag}=")
    raise flags.ValidationError(message) from None
  return True


def _eval_source(model_dir: str):
  """(tfds name, data_dir) of the workdir config's evaluation source, if it has one."""
  path = os.path.join(model_dir, "config.json")
  if not os.path.exists(path):
    return None, None
  with open(path) as f:
    config = json.load(f)
  if "data" not in config or "eval" not in config:
    return None, None
  return held_out.eval_corpus(config)


def plot_det(far, frr, eer, path):
  import matplotlib  # pylint: disable=g-import-not-at-top  # optional: ge2e_jax[plots]
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
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
  import matplotlib  # pylint: disable=g-import-not-at-top  # optional: ge2e_jax[plots]
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


def record_evaluation(embedder, result: dict, condition: str, data: str, **fields) -> dict:
  """Adds an evaluation to the model's model_card.json (with --calibrate: its operating point)."""
  if FLAGS.window_rule:
    condition += f", window_rule={FLAGS.window_rule}"
  entry = model_card.evaluation(result, step=embedder.step, condition=condition, data=data,
                                **fields)
  card = embedder.card or model_card.new(embedder.step, embedder.window_frames,
                                         model.config_to_dict(embedder.config))
  model_card.write(FLAGS.model, model_card.add_evaluation(card, entry, FLAGS.calibrate))
  if export_io.is_export_dir(FLAGS.model):  # verified when loaded: the new card joins its list
    export_io.update_checksum(FLAGS.model, model_card.FILE)
  return entry


def load_model() -> inference.Embedder:
  """--model's Embedder with --which, --window_frames and --window_rule."""
  options = {} if FLAGS.window_frames is None else {"window_frames": FLAGS.window_frames}
  return inference.load(FLAGS.model, FLAGS.which, window_rule=FLAGS.window_rule, **options)


def evaluate_own_trials():
  """--trials or --speaker_dir: score, write the outputs, record the evaluation in the card."""
  if bool(FLAGS.trials) == bool(FLAGS.speaker_dir):
    raise app.UsageError("give one of --trials (with --audio_root) or --speaker_dir; "
                         "--calibrate, --score_norm and --cohort apply to them")
  if FLAGS.calibrate and FLAGS.window_rule:
    raise app.UsageError("--calibrate sets the threshold verify uses with the model's own "
                         "window rule: leave out --window_rule")
  if (FLAGS.score_norm == "asnorm") != (FLAGS.cohort is not None):
    raise app.UsageError("--score_norm=asnorm and --cohort=<npz or folder> go together")
  try:
    embedder = load_model()
    cohort = cohort_info = None
    if FLAGS.cohort:
      cohort, _ = trial_lists.load_cohort(embedder, FLAGS.cohort)
      cohort_info = {"source": FLAGS.cohort, "size": len(cohort), "top_k": FLAGS.top_k}
    common = dict(cohort=cohort, top_k=FLAGS.top_k, skip_unreadable=FLAGS.skip_unreadable)
    if FLAGS.trials:
      scored = trial_lists.score_trial_list(
          embedder, trial_lists.read_trials(FLAGS.trials, FLAGS.audio_root),
          f"trial list {FLAGS.trials}", **common)
      condition, name = "your trial list (experiments.evaluate --trials)", FLAGS.trials
    else:
      scored = trial_lists.score_speaker_folders(embedder, FLAGS.speaker_dir,
                                                 enroll=FLAGS.num_enroll, seed=FLAGS.seed,
                                                 **common)
      condition = "your speaker folders (experiments.evaluate --speaker_dir)"
      name = FLAGS.speaker_dir
    summary = scoring.summary(scored.scores, scored.labels, far_target=FLAGS.far_target)
    calibration = (scoring.fit_calibration(scored.scores, scored.labels).to_dict()
                   if FLAGS.calibrate else None)
  except audio.AudioReadError as err:
    sys.exit(f"evaluate: cannot read {err.path}: {err.reason}; --skip_unreadable leaves such "
             "files (and their trials) out")
  except (FileNotFoundError, ValueError) as err:
    sys.exit(f"evaluate: {err}")
  trial_lists.report_skipped(scored.skipped, "trial")
  entry = record_evaluation(embedder, summary, condition, scored.data,
                            score_norm=FLAGS.score_norm, cohort=cohort_info,
                            calibration=calibration)
  base = os.path.splitext(os.path.basename(os.path.normpath(name)))[0]
  output_dir = FLAGS.output_dir or os.path.join(FLAGS.model, f"eval_{base}")
  os.makedirs(output_dir, exist_ok=True)
  summary.update(model=embedder.source, step=embedder.step, data=scored.data,
                 window_frames=embedder.window_frames, score_norm=FLAGS.score_norm,
                 cohort=cohort_info, calibration=calibration, skipped=scored.skipped,
                 calibrated_on=entry["calibrated_on"])
  with open(os.path.join(output_dir, "eval.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(output_dir, "scores.tsv"), "w") as f:
    f.write("label\tenrol\ttest\tscore\n")
    f.writelines(f"{label}\t{enrol}\t{test}\t{score:.6f}\n" for label, enrol, test, score
                 in zip(scored.labels, scored.enrol, scored.test, scored.scores))
  if FLAGS.plots:
    far, frr, _ = metrics.det_curve(scored.scores, scored.labels)
    plot_det(far, frr, summary["eer"], os.path.join(output_dir, "det.png"))
  print(f"EER {100 * summary['eer']:.2f}% (threshold {summary['eer_threshold']:.4f}) "
        f"minDCF(0.01) {summary['min_dcf']:.4f}, threshold at FAR {FLAGS.far_target:g}: "
        f"{summary['far_threshold']:.4f}; {FLAGS.score_norm} scores on {scored.data}; model "
        f"{embedder.source}; {'calibrated, ' * FLAGS.calibrate}recorded in "
        f"{os.path.join(FLAGS.model, model_card.FILE)}; wrote {output_dir}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.plots:  # before any work: a missing matplotlib would otherwise end the run late
    cli.require("evaluate", "matplotlib", "plots", "for det.png; --noplots writes none")
  with cli.one_line_errors("evaluate"):
    output_paths.check("--output_dir", FLAGS.output_dir, models=[FLAGS.model], inputs=[
        FLAGS.speaker_dir, FLAGS.audio_root, FLAGS.trials, FLAGS.cohort, FLAGS.data_dir])
    if (FLAGS.trials or FLAGS.speaker_dir or FLAGS.calibrate or FLAGS.cohort
        or FLAGS.score_norm != "none"):
      evaluate_own_trials()
    else:
      evaluate()


def evaluate():
  """Evaluates --model on a TFDS corpus per the flags; writes and prints the summary."""

  embedder = load_model()
  tfds_name, data_dir = _eval_source(FLAGS.model)
  tfds_name, data_dir = FLAGS.tfds_name or tfds_name, FLAGS.data_dir or data_dir
  if tfds_name is None:
    raise ValueError(f"{FLAGS.model} names no evaluation corpus: pass --tfds_name")
  eval_set = held_out.load_eval_set(tfds_name, FLAGS.split, data_dir=data_dir,
                                      enroll=FLAGS.num_enroll,
                                      max_utterances_per_speaker=FLAGS.max_utterances_per_speaker)
  eval_set = held_out.with_channel(eval_set, FLAGS.channel, FLAGS.seed)
  embeddings = held_out.embed(eval_set, embedder)
  summary, trials = held_out.score(embeddings, eval_set.speakers, FLAGS.num_enroll,
                                    FLAGS.seed)
  summary.update(model=embedder.source, data=eval_set.description, enroll=FLAGS.num_enroll,
                 window_frames=embedder.window_frames, window_rule=embedder.config.window_rule)
  name = "eval" if (FLAGS.split, FLAGS.channel) == ("test", "") else (
      f"eval_{FLAGS.split}" + (f"+{FLAGS.channel}" if FLAGS.channel else ""))
  name += f"+{FLAGS.window_rule}" if FLAGS.window_rule else ""
  output_dir = FLAGS.output_dir or os.path.join(FLAGS.model, name)
  os.makedirs(output_dir, exist_ok=True)
  if FLAGS.plots:
    far, frr, _ = metrics.det_curve(trials.scores, trials.labels)
    plot_det(far, frr, summary["eer"], os.path.join(output_dir, "det.png"))
    plot_projection(embeddings, eval_set.speakers, FLAGS.plot_speakers,
                    os.path.join(output_dir, "embeddings_2d.png"))
  with open(os.path.join(output_dir, "eval.json"), "w") as f:
    json.dump(summary, f, indent=2)
  record_evaluation(embedder, summary, f"held-out corpus (experiments.evaluate, enroll="
                    f"{FLAGS.num_enroll})", eval_set.description)
  print(f"EER {100 * summary['eer']:.2f}% minDCF(0.01) {summary['min_dcf']:.4f} on "
        f"{eval_set.description}, {summary['trials']} trials; model {embedder.source}; "
        f"wrote {output_dir}")


def run():
  """The ``ge2e-evaluate`` console script (setup.cfg)."""
  cli.run(main, "evaluate", renamed={"enroll": "num_enroll"})


if __name__ == "__main__":
  run()

"""EER of a model with the energy trim (the default) vs Resemblyzer's webrtcvad trim.

  python -m experiments.compare_trim --model=runs/pretrained/resemblyzer --data_dir=runs/tfds \
      --conditions=synthetic_voices/td_ok_computer:test_unseen_lang,...

Each condition ``tfds_name:split[+channel]`` (``experiments.held_out.parse_conditions``) is
scored twice with the same trials: its audio as the corpus holds it (the builders cut leading
and trailing silence with the energy trim, ``ge2e_jax.audio.trim_silence``), and that audio
further cut by ``audio.trim_long_silences`` (webrtcvad; pauses inside utterances too), as
Resemblyzer's ``preprocess_wav`` would. Needs the webrtcvad package. Prints one table.
"""

from absl import app, flags

from experiments import cli, held_out
from ge2e_jax import audio, inference

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir or export dir.")
flags.DEFINE_string("conditions", None, "'tfds_name:split[+channel]', comma-separated.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir of those corpora.")
flags.DEFINE_integer("enroll", 3, "Enrollment utterances per speaker.")
flags.DEFINE_integer("max_utterances_per_speaker", 20, "Cap on utterances read per speaker.")
flags.mark_flags_as_required(["model", "conditions"])


def compare(model: str, conditions: str, data_dir: str | None, enroll: int,
            max_utterances: int) -> list[dict]:
  embedder = inference.load(model)
  webrtcvad = audio.TrimOptions(method="webrtcvad")
  rows = []
  for corpus, split, channel, _ in held_out.parse_conditions(conditions):
    if corpus is None:
      raise ValueError(f"--conditions: {split!r} names no corpus; expected tfds_name:split")
    eval_set = held_out.with_channel(
        held_out.load_eval_set(corpus, split, data_dir=data_dir, enroll=enroll,
                                 max_utterances_per_speaker=max_utterances), channel, seed=0)
    trimmed = [webrtcvad.apply(w)[0] for w in eval_set.waves]
    short = sum(len(w) < audio.MIN_SPEECH_SAMPLES for w in trimmed)
    trimmed = [t if len(t) >= audio.MIN_SPEECH_SAMPLES else w  # nothing voiced: keep it
               for t, w in zip(trimmed, eval_set.waves)]
    row = {"condition": eval_set.description, "kept_untrimmed": short,
           "seconds_cut": sum(map(len, eval_set.waves)) / 16000 - sum(map(len, trimmed)) / 16000}
    for name, waves in (("energy", eval_set.waves), ("webrtcvad", trimmed)):
      summary, _ = held_out.score(embedder.embed_prepared(waves), eval_set.speakers, enroll)
      row[name] = summary["eer"]
    rows.append(row)
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with cli.one_line_errors("compare_trim"):
    rows = compare(FLAGS.model, FLAGS.conditions, FLAGS.data_dir, FLAGS.enroll,
                   FLAGS.max_utterances_per_speaker)
  print(f"model {FLAGS.model}")
  print("| condition | EER, energy trim (corpus) | EER, + webrtcvad trim | audio cut by webrtcvad |")
  print("|---|---:|---:|---:|")
  for row in rows:
    print(f"| {row['condition']} | {100 * row['energy']:.2f} % | {100 * row['webrtcvad']:.2f} % "
          f"| {row['seconds_cut']:.0f} s ({row['kept_untrimmed']} utterances left whole) |")


if __name__ == "__main__":
  cli.run(main, "compare_trim")

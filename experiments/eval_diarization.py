"""DER of ``ge2e_jax.diarization`` on conversations built from held-out speakers.

  python -m experiments.eval_diarization --model=runs/ti_cpu --output_dir=runs/der_ti_cpu

Each conversation takes 2, 3 or 4 speakers (--speaker_counts) of a held-out split
(--corpus, --split; default the text-independent synthetic corpus's ``test`` speakers, none
of whom is in ``train``) and alternates them in turns: every speaker talks first once in
random order, then each turn goes to a random other speaker than the last. A turn lasts a
duration drawn uniformly from --turn_seconds (its speaker's utterances, each used once per
conversation, joined with 0.15 s pauses and cut to that length); turns are separated by
silences drawn from --gap_seconds, with no overlapping speech. The reference RTTM holds one
segment per turn. Each conversation is scored in every --conditions channel
(``experiments.conditions.apply_condition``: "clean", "noise_snr5..15", ...) twice: with its
speaker count given and with the count estimated by the eigen-gap. DER is
``ge2e_jax.der.diarization_error_rate`` (md-eval's definition; --collar seconds removed on
each side of every reference boundary; pyannote.metrics' collar is twice this number).

The table (markdown) goes to stdout; --output_dir also gets ``results.json`` (the table,
per-conversation numbers, settings) and the RTTMs (``reference.rttm``,
``<condition>_known.rttm``, ``<condition>_estimated.rttm``) so another scorer can re-score
them. Clustering and window flags are those of ``experiments.diarize``.
"""

import json
import os
import sys

from absl import app, flags
import numpy as np

from data_pipelines import corpus as corpora
from experiments import cli, conditions
from experiments import diarize as diarize_cli  # its window/clustering flags, defined once
from ge2e_jax import atomic_file, audio, der, diarization, inference
from ge2e_jax.features import SAMPLE_RATE

FLAGS = flags.FLAGS
flags.DEFINE_string("corpus", "synthetic_voices/ti", "Held-out speech corpus (TFDS name).")
flags.DEFINE_string("split", "test", "Its split whose speakers make the conversations.")
flags.DEFINE_string("data_dir", "runs/tfds", "TFDS data_dir of the corpus.")
flags.DEFINE_list("speaker_counts", ["2", "3", "4"], "Speakers per conversation.")
flags.DEFINE_integer("conversations", 10, "Conversations per speaker count.")
flags.DEFINE_integer("turns", 10, "Turns per conversation.")
flags.DEFINE_list("turn_seconds", ["1.0", "6.0"], "Turn durations: uniform in [low, high].")
flags.DEFINE_list("gap_seconds", ["0.1", "0.5"], "Silence between turns: uniform in [low, high].")
flags.DEFINE_list("conditions", ["clean", "noise_snr5..15"], "apply_condition channels.")
flags.DEFINE_float("collar", 0.25, "Seconds not scored on each side of a reference boundary.")
flags.DEFINE_integer("seed", 0, "Seeds the conversations and the noise.")
flags.DEFINE_string("output_dir", None, "Where results.json and the RTTMs go (optional).")

PAUSE_S = 0.15  # between the utterances of one turn


def speaker_utterances(corpus, split, data_dir) -> dict:
  """{speaker: [float32 16 kHz waveforms]} of a prepared corpus split."""
  by_speaker = {}
  for example in corpora.iterate(corpus, split, data_dir):
    by_speaker.setdefault(example["speaker"], []).append(audio.from_int16(example["audio"]))
  return by_speaker


def conversation(by_speaker: dict, num_speakers: int, turns: int, turn_s, gap_s,
                 rng: np.random.Generator, sample_rate: int):
  """(waveform, [(start_s, end_s, speaker)]) of one conversation; see the module doc."""
  speakers = list(rng.choice(sorted(by_speaker), size=num_speakers, replace=False))
  unused = {s: list(rng.permutation(len(by_speaker[s]))) for s in speakers}
  order = list(rng.permutation(speakers))
  while len(order) < max(turns, num_speakers):
    order.append(rng.choice([s for s in speakers if s != order[-1]]))
  pause = np.zeros(int(PAUSE_S * sample_rate), np.float32)
  pieces, reference, t = [], [], 0
  for speaker in order:
    gap = np.zeros(int(rng.uniform(*gap_s) * sample_rate), np.float32)
    want = int(rng.uniform(*turn_s) * sample_rate)
    turn = []
    while sum(map(len, turn)) < want:
      if not unused[speaker]:
        unused[speaker] = list(rng.permutation(len(by_speaker[speaker])))
      turn += [by_speaker[speaker][unused[speaker].pop()], pause]
    turn = np.concatenate(turn)[:want]
    pieces += [gap, turn]
    t += len(gap)
    reference.append((t / sample_rate, (t + len(turn)) / sample_rate, speaker))
    t += len(turn)
  pieces.append(np.zeros(int(gap_s[1] * sample_rate), np.float32))
  return np.concatenate(pieces), reference


def summarise(rows: list[dict]) -> list[dict]:
  """One line per (condition, speakers) and per condition over all counts: DER pooled."""
  groups = {}
  for row in rows:
    for key in ((row["condition"], row["speakers"]), (row["condition"], "all")):
      groups.setdefault(key, []).append(row)
  order = lambda key: (FLAGS.conditions.index(key[0]), key[1] == "all", str(key[1]))
  table = []
  for (condition, speakers) in sorted(groups, key=order):
    group = groups[(condition, speakers)]
    line = {"condition": condition, "speakers": speakers, "conversations": len(group),
            "seconds": sum(r["seconds"] for r in group)}
    for mode in ("known", "estimated"):
      reference = sum(r[mode]["reference"] for r in group)
      for part in ("missed", "false_alarm", "confusion"):
        line[f"{part}_{mode}"] = sum(r[mode][part] for r in group) / reference
      line[f"der_{mode}"] = sum(line[f"{p}_{mode}"] for p in ("missed", "false_alarm",
                                                             "confusion"))
    line["count_correct"] = float(np.mean([r["estimated_count"] == r["speakers"]
                                           for r in group]))
    line["mean_estimated_count"] = float(np.mean([r["estimated_count"] for r in group]))
    table.append(line)
  return table


def markdown(table: list[dict], collar: float) -> str:
  lines = ["| condition | speakers | conversations (min) | DER, count known (of which "
           "confusion) | DER, count estimated (of which confusion) | count right | "
           "mean estimated count |", "|---|---|---|---|---|---|---|"]
  for t in table:
    lines.append(f"| {t['condition']} | {t['speakers']} | {t['conversations']} "
                 f"({t['seconds'] / 60:.1f}) | {100 * t['der_known']:.1f} % "
                 f"({100 * t['confusion_known']:.1f} %) | {100 * t['der_estimated']:.1f} % "
                 f"({100 * t['confusion_estimated']:.1f} %) | {100 * t['count_correct']:.0f} % | "
                 f"{t['mean_estimated_count']:.2f} |")
  lines.append(f"\nDER = (missed + false alarm + confusion) / reference speech, pooled over "
               f"the conversations; collar {collar:g} s on each side of reference boundaries.")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")

  with cli.one_line_errors("eval_diarization"):
    counts = [int(c) for c in FLAGS.speaker_counts]
    turn_s = tuple(float(v) for v in FLAGS.turn_seconds)
    gap_s = tuple(float(v) for v in FLAGS.gap_seconds)
    if len(turn_s) != 2 or len(gap_s) != 2 or not 0 < turn_s[0] <= turn_s[1] or not (
        0 <= gap_s[0] <= gap_s[1]):
      raise ValueError("--turn_seconds and --gap_seconds take low,high with 0 < low <= high")
    options = diarize_cli.options_from_flags()
    embedder = diarization.windowed_embedder(inference.load(FLAGS.model, FLAGS.which), options)
    by_speaker = speaker_utterances(FLAGS.corpus, FLAGS.split, FLAGS.data_dir)
    if max(counts) > len(by_speaker):
      raise ValueError(f"--speaker_counts: {FLAGS.corpus} {FLAGS.split} has only "
                       f"{len(by_speaker)} speakers")
    rng = np.random.default_rng(FLAGS.seed)
    convs = [(f"conv{n}spk{i:02d}", n, *conversation(by_speaker, n, FLAGS.turns, turn_s, gap_s,
                                                      rng, SAMPLE_RATE))
             for n in counts for i in range(FLAGS.conversations)]
    rows, rttm = [], {"reference": []}
    for condition in FLAGS.conditions:
      waves = conditions.apply_condition([wave for _, _, wave, _ in convs], condition,
                                         FLAGS.seed)
      for (conv_id, n, _, reference), wave in zip(convs, waves):
        ref = [diarization.Segment(s, e, spk) for s, e, spk in reference]
        if condition == FLAGS.conditions[0]:
          rttm["reference"] += diarization.rttm_lines(ref, conv_id)
        row = {"conversation": conv_id, "condition": condition, "speakers": n,
               "seconds": len(wave) / SAMPLE_RATE}
        windows = diarization.window_dvectors(embedder, wave, SAMPLE_RATE, options, conv_id)
        for mode, given in (("known", n), ("estimated", None)):
          hyp = diarization.segments(windows, given, options)
          row[mode] = der.diarization_error_rate(ref, hyp, FLAGS.collar)._asdict()
          rttm.setdefault(f"{condition}_{mode}", []).extend(diarization.rttm_lines(hyp, conv_id))
          if mode == "estimated":
            row["estimated_count"] = len({s.speaker for s in hyp})
        rows.append(row)
        print(f"eval_diarization: {condition} {conv_id}: DER known "
              f"{100 * row['known']['der']:.1f} %, estimated {100 * row['estimated']['der']:.1f} "
              f"% ({row['estimated_count']} speakers)", file=sys.stderr, flush=True)
    table = summarise(rows)
    print(f"eval_diarization: model {embedder.source}, windows of {embedder.window_frames} frames every "
          f"{embedder.hop_frames}", file=sys.stderr)
    print(markdown(table, FLAGS.collar))
    if FLAGS.output_dir:
      os.makedirs(FLAGS.output_dir, exist_ok=True)
      settings = {name: FLAGS[name].value for name in (
          "model", "which", "corpus", "split", "speaker_counts", "conversations", "turns",
          "turn_seconds", "gap_seconds", "conditions", "collar", "seed", "window_frames",
          "hop_frames", "p_percentile", "blur_sigma", "min_speakers", "max_speakers",
          "vad_top_db", "min_pause_s")}
      settings.update(window_frames_used=embedder.window_frames, model_source=embedder.source)
      with atomic_file.atomic_write(os.path.join(FLAGS.output_dir, "results.json")) as f:
        json.dump({"settings": settings, "command": " ".join(sys.argv), "table": table,
                   "conversations": rows}, f, indent=1)
      for name, lines in rttm.items():
        with atomic_file.atomic_write(os.path.join(FLAGS.output_dir, f"{name}.rttm")) as f:
          f.write("".join(f"{line}\n" for line in lines))


if __name__ == "__main__":
  cli.run(main, "eval_diarization")

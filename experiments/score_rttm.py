"""DER of a hypothesis RTTM against a reference RTTM, per file and pooled.

  python -m experiments.score_rttm --reference=ref.rttm --hypothesis=hyp.rttm [--collar=0.25]

Scored with ``ge2e_jax.der`` (md-eval's definition; --collar seconds on each side of every
reference boundary) and, where pyannote.metrics is installed (``pip install '.[diarize]'``),
with its DiarizationErrorRate (collar 2 x --collar, its full width) beside it. A file of the
reference missing from the hypothesis is scored as all missed. Needs no jax or TensorFlow.
"""

import sys
import warnings

from absl import app, flags

from experiments import cli
from ge2e_jax import der

FLAGS = flags.FLAGS
flags.DEFINE_string("reference", None, "Reference RTTM.")
flags.DEFINE_string("hypothesis", None, "Hypothesis RTTM.")
flags.DEFINE_float("collar", 0.25, "Seconds not scored on each side of a reference boundary.")
flags.mark_flags_as_required(["reference", "hypothesis"])


def pyannote_scorer(collar: float):
  """(reference segments, hypothesis segments) -> pyannote's DER, or None if not installed."""
  try:  # optional dependency: the 'diarize' extra
    from pyannote.core import Annotation, Segment  # pylint: disable=g-import-not-at-top
    from pyannote.metrics.diarization import DiarizationErrorRate  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  metric = DiarizationErrorRate(collar=2 * collar)

  def annotation(segments):
    result = Annotation()
    for i, s in enumerate(segments):
      result[Segment(s.start, s.end), i] = s.speaker
    return result

  def score(reference, hypothesis):
    with warnings.catch_warnings():  # the uem is the union of the extents, as in ge2e_jax.der
      warnings.simplefilter("ignore")
      return metric(annotation(reference), annotation(hypothesis))
  score.metric = metric
  return score


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  with cli.one_line_errors("score_rttm"):
    with open(FLAGS.reference) as f:
      reference = der.read_rttm(f)
    with open(FLAGS.hypothesis) as f:
      hypothesis = der.read_rttm(f)
    if not reference:
      raise ValueError(f"--reference={FLAGS.reference} holds no SPEAKER lines")
    theirs = pyannote_scorer(FLAGS.collar)
    totals = dict(missed=0.0, false_alarm=0.0, confusion=0.0, reference=0.0)
    for file_id, segments in sorted(reference.items()):
      result = der.diarization_error_rate(segments, hypothesis.get(file_id, []), FLAGS.collar)
      for key in totals:
        totals[key] += getattr(result, key)
      other = f"  pyannote {100 * theirs(segments, hypothesis.get(file_id, [])):.2f} %" if (
          theirs) else ""
      print(f"{file_id}: DER {100 * result.der:.2f} %{other}")
    pooled = (totals["missed"] + totals["false_alarm"] + totals["confusion"]) / totals["reference"]
    other = f"; pyannote.metrics {100 * abs(theirs.metric):.2f} %" if theirs else ""
    print(f"all {len(reference)} files: DER {100 * pooled:.2f} % (missed "
          f"{100 * totals['missed'] / totals['reference']:.2f} %, false alarm "
          f"{100 * totals['false_alarm'] / totals['reference']:.2f} %, confusion "
          f"{100 * totals['confusion'] / totals['reference']:.2f} %; collar {FLAGS.collar:g} s "
          f"each side){other}")
    extra = sorted(set(hypothesis) - set(reference))
    if extra:
      print(f"score_rttm: hypothesis files not in the reference, not scored: {extra}",
            file=sys.stderr)


if __name__ == "__main__":
  cli.run(main, "score_rttm")

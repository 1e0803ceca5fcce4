"""ge2e_jax.der: hand-computed cases, and parity with pyannote.metrics where it is installed.

Imports only numpy, scipy and ge2e_jax.der, so the parity test also runs in a venv that
holds pyannote.metrics (the optional ``diarize`` extra) without jax.
"""

from typing import NamedTuple

import numpy as np
import pytest

from ge2e_jax import der


class Seg(NamedTuple):
  start: float
  end: float
  speaker: str


def segs(*items):
  return [Seg(s, e, spk) for s, e, spk in items]


@pytest.mark.parametrize("ref,hyp,collar,expected", [
    # (missed, false alarm, confusion, reference seconds), worked out by hand
    (segs((0, 10, "A")), segs((0, 10, "x")), 0.0, (0, 0, 0, 10)),
    (segs((0, 5, "A"), (5, 10, "B")), segs((0, 6, "x"), (6, 10, "y")), 0.0, (0, 0, 1, 10)),
    # collars [4.75, 5.25] around 5, [0, 0.25] and [9.75, 10] at the edges: 9 s scored,
    # [5.25, 6] confused
    (segs((0, 5, "A"), (5, 10, "B")), segs((0, 6, "x"), (6, 10, "y")), 0.25,
     (0, 0, 0.75, 9)),
    (segs((0, 4, "A"), (6, 10, "B")), segs((0, 3, "x"), (5, 10, "y")), 0.0, (1, 1, 0, 8)),
    # overlapped reference speech [4, 6]: two speakers, one hypothesis label: 1 s missed in each
    # half; A->x, B->y
    (segs((0, 6, "A"), (4, 10, "B")), segs((0, 5, "x"), (5, 10, "y")), 0.0, (2, 0, 0, 12)),
    # one reference speaker split in two: the smaller part is confusion
    (segs((0, 10, "A")), segs((0, 6, "x"), (6, 10, "y")), 0.0, (0, 0, 4, 10)),
    (segs((0, 10, "A")), [], 0.0, (10, 0, 0, 10)),
    # a speaker's own overlapping segments count once; hypothesis past the reference is FA
    (segs((0, 6, "A"), (3, 8, "A")), segs((0, 9, "x")), 0.0, (0, 1, 0, 8)),
])
def test_hand_computed(ref, hyp, collar, expected):
  result = der.diarization_error_rate(ref, hyp, collar)
  np.testing.assert_allclose((result.missed, result.false_alarm, result.confusion,
                              result.reference), expected, atol=1e-12)
  assert result.der == pytest.approx(sum(expected[:3]) / expected[3])


def test_mapping_is_one_to_one_and_optimal():
  ref = segs((0, 4, "A"), (4, 6, "B"), (6, 10, "C"))
  hyp = segs((0, 5, "x"), (5, 10, "y"))  # C shares 4 s with y, B 1 s with each: B unmapped
  result = der.diarization_error_rate(ref, hyp, 0.0)
  assert result.mapping == {"A": "x", "C": "y"}
  assert result.confusion == pytest.approx(2.0)


def merged(segments):
  """A speaker's overlapping segments joined: pyannote.metrics would count each of them
  (so a speaker could be "twice" active), md-eval and ge2e_jax.der count the speaker once."""
  out = []
  for seg in sorted(segments, key=lambda s: (s.speaker, s.start)):
    if out and out[-1].speaker == seg.speaker and seg.start <= out[-1].end:
      out[-1] = out[-1]._replace(end=max(out[-1].end, seg.end))
    else:
      out.append(seg)
  return sorted(out)


def random_conversation(rng, speakers, turns=12):
  """Turns with gaps and overlaps (reference) and a noisy copy (hypothesis)."""
  ref, t = [], 0.0
  names = [f"S{i}" for i in range(speakers)]
  for i in range(turns):
    t += rng.uniform(-0.8, 1.0)  # negative: overlap with the previous turn
    t = max(t, 0.0)
    length = rng.uniform(0.5, 5.0)
    ref.append(Seg(round(t, 2), round(t + length, 2), names[i % speakers]))
    t += length
  labels = {n: f"h{rng.permutation(speakers + 1)[0]}" for n in names}
  hyp = []
  for seg in ref:
    start, end = seg.start + rng.normal(0, 0.3), seg.end + rng.normal(0, 0.3)
    label = labels[seg.speaker] if rng.random() > 0.2 else f"h{rng.integers(speakers + 1)}"
    if end > start:
      hyp.append(Seg(round(max(start, 0.0), 2), round(end, 2), label))
  return merged(ref), merged(hyp)


@pytest.mark.parametrize("collar", [0.0, 0.25])
def test_parity_with_pyannote_metrics(collar):
  metrics = pytest.importorskip(
      "pyannote.metrics.diarization",
      reason="pyannote.metrics not installed (pip install '.[diarize]'): parity not checked")
  core = pytest.importorskip("pyannote.core")

  def annotation(segments):
    a = core.Annotation()
    for i, s in enumerate(segments):
      a[core.Segment(s.start, s.end), i] = s.speaker
    return a

  rng = np.random.default_rng(0)
  checked = 0
  for trial in range(30):
    ref, hyp = random_conversation(rng, speakers=2 + trial % 3)
    # pyannote's collar is the collar's whole width: md-eval's +-0.25 s is its 0.5
    metric = metrics.DiarizationErrorRate(collar=2 * collar)
    with pytest.warns(UserWarning, match="uem"):  # both default to the union of the extents
      theirs = metric(annotation(ref), annotation(hyp), detailed=True)
    ours = der.diarization_error_rate(ref, hyp, collar)
    np.testing.assert_allclose(
        (ours.missed, ours.false_alarm, ours.confusion, ours.reference, ours.der),
        (theirs["missed detection"], theirs["false alarm"], theirs["confusion"],
         theirs["total"], theirs["diarization error rate"]), rtol=1e-9, atol=1e-9)
    checked += ours.der > 0.05
  assert checked > 20  # the cases were not trivially perfect

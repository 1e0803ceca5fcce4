"""held_out.band_eers (experiments/band_eer.py): the trials of one band pair, picked trial by trial in a loop as the reference."""

import numpy as np
import pytest

from experiments import held_out
from ge2e_jax import metrics


def test_band_eers_keep_the_trials_of_each_band_pair():
  rng = np.random.default_rng(0)
  band_of = {"a": "4000", "b": "4000", "c": "8000", "d": "8000", "e": "8000"}
  speakers = np.repeat(sorted(band_of), 5)
  embeddings = rng.normal(size=(len(speakers), 8)) + 2 * rng.normal(size=(5, 8)).repeat(5, 0)
  trials = metrics.speaker_trials(embeddings, speakers, enroll=2, seed=1)
  picked = {"all": [], "same band": [], "4000 Hz only": [], "8000 Hz only": []}
  for t, row in enumerate(trials.test_index):
    for k, model in enumerate(trials.speakers):
      trial = (trials.scores[t * len(trials.speakers) + k], int(speakers[row] == model))
      picked["all"].append(trial)
      if band_of[speakers[row]] == band_of[model]:
        picked["same band"].append(trial)
        picked[f"{band_of[model]} Hz only"].append(trial)
  rows = held_out.band_eers(trials, speakers, band_of)
  assert [r[0] for r in rows] == list(picked)
  for what, count, target, eer in rows:
    scores, labels = np.array(picked[what]).T
    assert (count, target) == (len(labels), labels.sum())
    assert eer == pytest.approx(metrics.eer(scores, labels.astype(int))[0])
  assert rows[1][1] == 3 * 2 * 2 + 9 * 3  # test utterances x speakers of their band


def test_a_band_of_one_speaker_has_no_eer():
  band_of = {"a": "4000", "b": "8000", "c": "8000"}
  speakers = np.repeat(sorted(band_of), 3)
  trials = metrics.speaker_trials(np.random.default_rng(1).normal(size=(9, 4)), speakers,
                                  enroll=1)
  assert [r[0] for r in held_out.band_eers(trials, speakers, band_of)] == [
      "all", "same band", "8000 Hz only"]

"""data_pipelines.corpus: one reader for every prepared corpus, and a TFDS librispeech-shaped
corpus (the adapter path) trained and evaluated through the public run config."""

import json
import os

import numpy as np
import pytest

from data_pipelines import corpus
from experiments import training_loop
from experiments.configs import td_demo
from ge2e_jax import augment

STEPS = 4


def test_iterate_reads_librispeech_through_the_adapter(fake_librispeech):
  test = {ex["utterance"]: ex for ex in corpus.iterate(fake_librispeech.name, "test",
                                                       fake_librispeech.data_dir)}
  expected = {k: v for k, v in fake_librispeech.written.items() if v[3] == "test_clean"}
  assert set(test) == set(expected)
  for utterance, (speaker, ints, text, _) in expected.items():
    assert test[utterance]["speaker"] == speaker and test[utterance]["text"] == text
    np.testing.assert_array_equal(test[utterance]["audio"], ints)


def test_unknown_or_unprepared_corpora_are_named(tmp_path):
  with pytest.raises(ValueError, match="corpus 'no_such_corpus': no such TFDS dataset"):
    corpus.open_split("no_such_corpus", "train", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="'synthetic_voices/td_ok_computer' is not prepared"):
    corpus.open_split("synthetic_voices/td_ok_computer", "train", str(tmp_path))


def test_a_plus_b_pools_two_corpora_keeping_their_speakers_apart(synthetic_td, synthetic_ti):
  assert synthetic_td.data_dir == synthetic_ti.data_dir
  parts = {name: list(corpus.iterate(name, "train", synthetic_td.data_dir))
           for name in (synthetic_td.name, synthetic_ti.name)}
  pooled = list(corpus.iterate(f"{synthetic_td.name}+{synthetic_ti.name}", "train",
                               synthetic_td.data_dir))
  expected = {(f"{name}:{ex['speaker']}", f"{name}:{ex['utterance']}"): ex["audio"]
              for name, found in parts.items() for ex in found}
  assert {(ex["speaker"], ex["utterance"]) for ex in pooled} == set(expected)
  for ex in pooled:
    np.testing.assert_array_equal(ex["audio"], expected[ex["speaker"], ex["utterance"]])
  # The synthetic configs share voices: pooled, a voice of each corpus is its own speaker.
  shared = {ex["speaker"] for ex in parts[synthetic_td.name]} & {
      ex["speaker"] for ex in parts[synthetic_ti.name]}
  assert shared and len({ex["speaker"] for ex in pooled}) == sum(
      len({ex["speaker"] for ex in found}) for found in parts.values())


@pytest.fixture(scope="module")
def librispeech_run(fake_librispeech, tmp_path_factory):
  config = td_demo.get_config()  # what --config=experiments/configs/td_demo.py loads
  # The same fields as --config.data.sources="{'ls': {'corpus': 'librispeech/lazy_decode'}}"
  # --config.eval.source=ls
  config.data.sources = {"ls": {"corpus": fake_librispeech.name}}
  config.data.data_dir = fake_librispeech.data_dir
  config.eval.source = "ls"
  config.data.n_speakers, config.data.n_utterances = 2, 3
  config.model.cells, config.model.projection = 16, 8
  config.train.num_steps = config.train.checkpoint_every = config.eval.every = STEPS
  config.train.log_every = 2
  config.eval.enroll, config.eval.window_frames = 1, 20
  config.eval.conditions = ""  # td_demo's are splits of the synthetic corpus
  for kind in augment.KINDS:
    config.augment[kind].prob = 0.0
  workdir = tmp_path_factory.mktemp("librispeech_run")
  state, last_eval = training_loop.train_and_evaluate(config, str(workdir))
  return workdir, state, last_eval


@pytest.mark.slow
def test_librispeech_trains_and_evaluates_through_the_run_config(librispeech_run):
  workdir, state, last_eval = librispeech_run
  assert int(state.step) == STEPS and int(state.nonfinite_steps) == 0
  # test_clean: 2 speakers x 3 utterances, 1 enrolled each -> 2 x 2 test utterances, each
  # scored against both speakers.
  assert last_eval["trials"] == 8 and last_eval["target_trials"] == 4
  assert 0.0 <= last_eval["eer"] <= 1.0
  with open(os.path.join(workdir, "eval_history.jsonl")) as f:
    history = [json.loads(line) for line in f]
  assert [h["step"] for h in history] == [STEPS]
  assert history[0]["eer"] == pytest.approx(last_eval["eer"])

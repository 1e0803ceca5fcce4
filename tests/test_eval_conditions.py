"""config.eval.conditions: held-out splits and channels scored beside the main split."""

import jax
import numpy as np
import pytest

from experiments import held_out, reporting
from experiments.configs import td_demo
from ge2e_jax import model, model_card, train_step

TINY = model.EncoderConfig(cells=16, projection=8)


@pytest.fixture(scope="module")
def evaluator(synthetic_td, synthetic_ti):
  c = td_demo.get_config()
  c.data.sources.ok.corpus, c.data.data_dir = synthetic_td.name, synthetic_td.data_dir
  c.eval.conditions = f"test_unseen_lang, test+noise_snr5, {synthetic_ti.name}:test"
  c.eval.max_utterances_per_speaker = 6
  evaluator = held_out.HeldOutEvaluator(c, TINY)
  evaluator.ti_name = synthetic_ti.name  # the corpus of the qualified condition
  return evaluator


def test_conditions_parse_into_corpus_split_and_channel():
  assert held_out.parse_conditions(
      "test_unseen_lang, test+noise_snr5+reverb, synthetic_voices/ti:test+telephone,"
      "?recorded_voices:test+reverb") == [
          (None, "test_unseen_lang", "", False), (None, "test", "noise_snr5+reverb", False),
          ("synthetic_voices/ti", "test", "telephone", False),
          ("recorded_voices", "test", "reverb", True)]
  for bad in ("+noise_snr5", ":test", "synthetic_voices/ti:", "?"):
    with pytest.raises(ValueError, match="names no split or corpus"):
      held_out.parse_conditions(bad)


def test_noisy_condition_is_the_main_split_at_the_asked_snr(evaluator):
  clean, noisy = evaluator.eval_set, evaluator.conditions["test+noise_snr5"]
  assert noisy.utterances == clean.utterances
  for c, n in zip(clean.waves, noisy.waves):
    c, n = np.asarray(c, np.float64), np.asarray(n, np.float64)
    assert c.shape == n.shape
    snr = 10 * np.log10(np.sum(c ** 2) / np.sum((n - c) ** 2))
    assert abs(snr - 5.0) < 0.5


def test_every_condition_is_scored_and_recorded(evaluator, tmp_path):
  unseen = evaluator.conditions["test_unseen_lang"]
  assert not set(unseen.speakers) & set(evaluator.eval_set.speakers)
  params = train_step.init_params(jax.random.key(0), TINY)
  summary = evaluator(params)
  other = evaluator.conditions[f"{evaluator.ti_name}:test"]
  assert other.description.startswith(evaluator.ti_name) and other.utterances != unseen.utterances
  assert set(summary["conditions"]) == {"test_unseen_lang", "test+noise_snr5",
                                        f"{evaluator.ti_name}:test"}
  for result in summary["conditions"].values():
    assert 0.0 <= result["eer"] <= 1.0 and result["trials"] > result["target_trials"] > 0
  reporter = reporting.Reporter(str(tmp_path), True, 0, 10, 4, ("ok",))
  reporter.evaluation(5, 1.0, summary, evaluator.description)
  reporter.close()
  history = reporting.read_eval_history(str(tmp_path))
  assert history[0]["conditions"]["test+noise_snr5"]["eer"] == summary["conditions"][
      "test+noise_snr5"]["eer"]
  for record in (history[0], *history[0]["conditions"].values()):  # eer_ci95 reaches it too
    low, high = record["eer_ci95"]
    assert 0.0 <= low <= high <= 1.0
  model_card.record_training_eval(str(tmp_path), td_demo.get_config().to_dict(), 5, summary,
                                  evaluator.description)
  entries = model_card.read(str(tmp_path))["evaluations"]
  assert [e["operating_point"] for e in entries] == [True, False, False, False]
  assert entries[2]["data"].endswith("+ noise_snr5")
  assert entries[0]["eer_ci95"] == history[0]["eer_ci95"]



def test_an_optional_condition_is_skipped_where_its_corpus_is_not_prepared(synthetic_td):
  c = td_demo.get_config()  # the demo: real speakers only where recorded_voices is built
  c.data.sources.ok.corpus, c.data.data_dir = synthetic_td.name, synthetic_td.data_dir
  assert "?recorded_voices:test" in c.eval.conditions
  c.eval.max_utterances_per_speaker = 4
  c.eval.conditions = "?recorded_voices:test,?recorded_voices:test+reverb,test_unseen_lang"
  assert set(held_out.HeldOutEvaluator(c, TINY).conditions) == {"test_unseen_lang"}
  c.eval.conditions = "recorded_voices:test"
  with pytest.raises(FileNotFoundError, match="'recorded_voices' is not prepared"):
    held_out.HeldOutEvaluator(c, TINY)

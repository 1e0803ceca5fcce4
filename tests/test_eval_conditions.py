"""Held-out conditions: the channel grammar (one token per registered augmentation kind),
its waveforms, and config.eval.conditions' splits and channels scored beside the main split."""

import re

import jax
import numpy as np
import pytest
import scipy.signal

from experiments import conditions, held_out, reporting
from experiments.configs import td_demo
from ge2e_jax import augment, augment_kinds, model, model_card, rir, train_step

TINY = model.EncoderConfig(cells=16, projection=8)
WAVES = [0.1 * np.random.RandomState(n).randn(n).astype(np.float32)
         * np.abs(np.sin(np.linspace(0, 4, n, dtype=np.float32)))
         for n in (12000, 16000, 9500, 14000)]  # one 1 s bucket: one compile per condition
SPEAKERS = ["a", "a", "b", "c"]


def snr_db(clean, noisy):
  clean, noisy = np.asarray(clean, np.float64), np.asarray(noisy, np.float64)
  return 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))


@pytest.mark.parametrize("name", augment.KINDS)
def test_every_kind_has_a_condition_token_that_selects_it_alone(name):
  kind = augment_kinds.REGISTRY[name]
  token = re.sub(r"\[.*\]| \(.*\)", "", kind.condition_help.split(", ")[0]).replace("X", "1")
  options = conditions.condition_options(token, seed=4)
  assert options.enabled() == (name,) and getattr(options, name).prob == 1.0, token
  with pytest.raises(ValueError, match=f"names {name} twice"):
    conditions.condition_options(f"{token}+{token}")
  with pytest.raises(ValueError, match=re.escape(kind.condition_help)):  # listed in the error
    conditions.condition_options(f"{token}+hiss")


def test_condition_noise_and_babble_snr_lengths_and_determinism():
  white = conditions.apply_condition(WAVES, "white_snr10", seed=1)
  assert [len(w) for w in white] == [len(w) for w in WAVES]
  for clean, noisy in zip(WAVES, white):
    assert snr_db(clean, noisy) == pytest.approx(10.0, abs=0.02)
  ranged = conditions.apply_condition(WAVES, "noise_snr5..15", seed=1)
  got = [snr_db(c, n) for c, n in zip(WAVES, ranged)]
  assert all(5 - 0.02 < g < 15 + 0.02 for g in got) and np.ptp(got) > 1
  again = conditions.apply_condition(WAVES[:2], "noise_snr5..15", seed=1)  # wave i: (seed, i)
  for a, b in zip(again, ranged):
    np.testing.assert_array_equal(a, b)
  babble = conditions.apply_condition(WAVES, "babble_snr10", seed=2, speakers=SPEAKERS)
  for clean, noisy in zip(WAVES, babble):
    assert snr_db(clean, noisy) == pytest.approx(10.0, abs=0.02)
  with pytest.raises(ValueError, match="speakers"):
    conditions.apply_condition(WAVES, "babble_snr10")
  with pytest.raises(ValueError, match="unknown augmentation condition part 'hiss'"):
    conditions.apply_condition(WAVES, "reverb+hiss")


def test_condition_reverb_is_a_bank_convolution_and_every_condition_keeps_length():
  out = conditions.apply_condition(WAVES, "reverb_rt0.4..0.6", seed=3)
  bank = rir.build_rir_bank(conditions.condition_options("reverb_rt0.4..0.6", 3).reverb)
  assert np.all((bank.rt60_s >= 0.4) & (bank.rt60_s <= 0.6))
  for clean, wet in zip(WAVES, out):
    errors = [np.max(np.abs(scipy.signal.fftconvolve(clean, h)[:len(clean)] - wet))
              for h in bank.rirs.astype(np.float64)]
    assert min(errors) < 2e-6
  for condition in ("clean", "telephone+speed1.1+gain_db-6"):
    out = conditions.apply_condition(WAVES, condition, seed=0)
    assert [len(w) for w in out] == [len(w) for w in WAVES], condition
    assert all(np.all(np.isfinite(w)) for w in out)


@pytest.mark.parametrize("train_seed", [0, 1])
def test_a_condition_shares_no_noise_or_room_with_training(train_seed):
  """Held-out noise and RIR banks are drawn apart from training's (seeded like them, with
  the same seed, they were the training noise itself and the training rooms' tails)."""
  train = augment.AugmentOptions.from_dict({"noise": {"prob": 0.5, "bank_seed": train_seed},
                                            "reverb": {"prob": 0.3, "bank_seed": train_seed}})
  held = conditions.condition_options("noise_snr5+reverb", seed=train_seed)

  def unit(rows):
    rows = np.asarray(rows, np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)

  noise = [unit(augment_kinds.REGISTRY["noise"](o.noise).bank) for o in (train, held)]
  assert np.max(np.abs(np.sum(noise[0] * noise[1], axis=-1))) < 0.05
  # RIRs from 10 ms on: past the direct path that every RIR shares.
  tails = [unit(rir.build_rir_bank(o.reverb).rirs[:, 160:]) for o in (train, held)]
  assert np.max(np.abs(tails[0] @ tails[1].T)) < 0.3


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
    assert np.shape(c) == np.shape(n)
    assert abs(snr_db(c, n) - 5.0) < 0.5


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

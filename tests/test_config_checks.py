"""A training config is checked once, up front (every bad field named as config.x.y), and a
workdir's checkpoints are only resumed with the config they were written with."""

import dataclasses
import os
import re

import pytest

from data_pipelines import source_specs
from experiments import config_checks, resume
from experiments.configs import (default, td, td_demo, td_multireader, td_pretrained, ti, ti_cpu,
                                 ti_cpu_real, ti_pretrained)
from ge2e_jax import checkpoint, settings


@pytest.mark.parametrize("module", [default, td, td_demo, td_multireader, td_pretrained, ti,
                                    ti_cpu, ti_cpu_real, ti_pretrained])
def test_shipped_configs_are_valid(module):
  config_checks.validate(module.get_config())


def test_ti_cpu_real_sweep_base_is_valid_and_an_unknown_base_is_named():
  config_checks.validate(ti_cpu_real.get_config("sweep"))
  with pytest.raises(ValueError, match=r"ti_cpu_real.py:fast: expected no suffix or ':sweep'"):
    ti_cpu_real.get_config("fast")


def test_every_bad_value_is_named_with_what_was_expected():
  c = td.get_config()
  c.train.num_steps = 0
  c.train.log_every = 0
  c.train.checkpoint_every = -5
  c.train.keep_last = 0
  c.loss.name = "ge2e"
  c.data.n_utterances = 1
  c.data.crop = "long"
  c.optimizer.learning_rate = float("nan")
  c.eval.window_frames = 81
  with pytest.raises(config_checks.ConfigError) as err:
    config_checks.validate(c)
  message = str(err.value)
  assert "\n" not in message
  for expected in ("config.train.num_steps=0: expected an integer >= 1",
                   "config.train.log_every=0: expected an integer >= 1",
                   "config.train.checkpoint_every=-5: expected an integer >= 1",
                   "config.train.keep_last=0: expected an integer >= 1",
                   "config.loss.name='ge2e': expected one of ('ge2e_softmax',",
                   "config.data.n_utterances=1: expected an integer >= 2",
                   "config.data.crop='long': expected one of ('td', 'ti')",
                   "config.optimizer.learning_rate=nan: expected a finite number > 0",
                   "config.eval.window_frames=81: expected an even integer >= 2"):
    assert expected in message, (expected, message)
  assert message.count("config.") == 9


def _two_sources(c):
  c.data.sources = {"ok": {"corpus": "a", "weight": 1.0}, "hey": {"corpus": "b", "weight": 0.5}}


@pytest.mark.parametrize("change, expected", [
    (lambda c: setattr(c.data.sources.ok, "weight", 0.0),
     "config.data.sources.ok.weight=0.0: expected a finite number > 0"),
    (lambda c: setattr(c.data.sources.ok, "corpus", ""),
     "config.data.sources.ok.corpus='': expected a prepared corpus's TFDS name"),
    (lambda c: setattr(c.data, "sources", {"ok": {"weight": 1.0}}),
     "config.data.sources.ok.corpus is missing"),
    (lambda c: setattr(c.data, "sources", {}),
     "config.data.sources={}: expected {name: {field: value}} with at least one entry"),
    (lambda c: setattr(c.eval, "source", "hey"),
     "config.eval.source='hey': expected one of ['ok']"),
    (lambda c: (_two_sources(c), setattr(c.loss, "name", "softmax")),
     "config.loss.name='softmax' trains on one source: config.data.sources names ['hey', 'ok']"),
    (lambda c: setattr(c.loss, "centroids", "split"),
     "config.data.n_utterances=5: split centroids"),
    (lambda c: setattr(c.eval, "max_utterances_per_speaker", 3),
     "config.eval.max_utterances_per_speaker=3: expected more than config.eval.enroll=3"),
    (lambda c: c.optimizer.update(dict(schedule="cosine", warmup_steps=10, decay_steps=10)),
     "config.optimizer.warmup_steps=10: expected fewer than config.optimizer.decay_steps=10"),
    (lambda c: setattr(c.augment.noise, "prob", 2.0), "config.augment.noise.prob"),
])
def test_sources_sections_and_fields_that_depend_on_each_other(change, expected):
  c = td.get_config()
  c.data.n_utterances = 5
  change(c)
  with pytest.raises(config_checks.ConfigError, match=re.escape(expected)):
    config_checks.validate(c)


def test_several_sources_are_one_section():
  c = td_multireader.get_config()
  assert c.data.sources.to_dict() == {
      "hey": {"corpus": "synthetic_voices/td_hey_computer", "weight": 1.0},
      "ok": {"corpus": "synthetic_voices/td_ok_computer", "weight": 0.5}}
  c.data.sources.ok.weight = 0.25  # --config.data.sources.ok.weight=0.25
  assert source_specs.sources(c.data)["ok"] == source_specs.Source(
      "synthetic_voices/td_ok_computer", 0.25)
  config_checks.validate(c)


def test_every_field_has_help_and_a_default_its_check_takes():
  sections = [f.type for f in dataclasses.fields(config_checks.RunConfig)
              if dataclasses.is_dataclass(f.type)] + [source_specs.Source]
  assert len(sections) == 7
  for cls in sections:
    for name, text in settings.help_text(cls).items():
      assert text, f"{cls.__name__}.{name} has no help text"
  assert settings.problems(config_checks.RunConfig, settings.defaults(config_checks.RunConfig),
                           "") == []


def test_a_missing_field_is_named():
  c = td.get_config().to_dict()
  del c["train"]["num_steps"]
  with pytest.raises(config_checks.ConfigError, match=r"config.train.num_steps is missing"):
    config_checks.validate(c)


def test_config_changes_name_what_a_resumed_run_must_keep():
  old = td.get_config().to_dict()
  new = td.get_config()
  new.model.cells = 64
  new.loss.name = "softmax"
  new.data.n_speakers = 32
  new.train.num_steps = 5          # may change: how long, how often, how evaluated
  new.train.log_every = 7
  new.eval.every = 3
  new.train.encoder_chunks = 4     # the same gradients, in less memory
  new.data.data_dir = "/elsewhere"
  new = new.to_dict()
  assert resume.config_changes(old, new) == [
      "data.n_speakers: 64 -> 32", "loss.name: 'ge2e_softmax' -> 'softmax'",
      "model.cells: 128 -> 64"]
  assert resume.config_changes(old, new, allow_batch_change=True) == [
      "loss.name: 'ge2e_softmax' -> 'softmax'", "model.cells: 128 -> 64"]
  del old["data"]["n_speakers"]  # a config.json written before a field existed
  assert "data.n_speakers" not in str(resume.config_changes(old, new))


def test_sources_written_as_strings_are_compared_in_todays_form():
  old = td_multireader.get_config().to_dict()
  old["data"]["sources"] = "hey:synthetic_voices/td_hey_computer,ok:synthetic_voices/td_ok_computer"
  old["data"]["weights"] = "hey:1.0,ok:0.5"
  new = td_multireader.get_config()
  assert resume.config_changes(old, new.to_dict()) == []
  new.data.sources.ok.weight = 0.25
  new.data.sources.hey.corpus = "synthetic_voices/td_hey_computer_16"
  assert resume.config_changes(old, new.to_dict()) == [
      "data.sources.hey.corpus: 'synthetic_voices/td_hey_computer' -> "
      "'synthetic_voices/td_hey_computer_16'", "data.sources.ok.weight: 0.5 -> 0.25"]


def test_check_config_refuses_a_workdir_with_checkpoints_of_another_config(tmp_path):
  written = td.get_config()
  checkpoint.write_config(os.fspath(tmp_path), written.to_dict())
  changed = td.get_config()
  changed.seed = 3
  resume.check_config(os.fspath(tmp_path), changed)  # no checkpoints yet: any config
  (tmp_path / checkpoint.CHECKPOINT_DIR / "100").mkdir(parents=True)
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"holds checkpoints of a run with another config \(its config.json\): "
                           r"seed: 0 -> 3; "
                           r"nothing was changed"):
    resume.check_config(os.fspath(tmp_path), changed)
  changed.seed, changed.data.n_utterances = 0, 5
  with pytest.raises(checkpoint.CheckpointMismatchError, match="allow_batch_change"):
    resume.check_config(os.fspath(tmp_path), changed)
  changed.train.allow_batch_change = True
  resume.check_config(os.fspath(tmp_path), changed)
  (tmp_path / checkpoint.CONFIG_FILE).write_text('{"model": ')
  with pytest.raises(ValueError, match=r"config.json is not readable JSON \(Expecting value"):
    resume.check_config(os.fspath(tmp_path), changed)

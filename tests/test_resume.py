"""The run's record is authoritative: a resumed run is compared with the config
stored in its checkpoint steps as well as config.json; with config.json missing, empty or
unreadable it resumes only against a step's copy, and stops in one line without one."""

import json
import os

import jax
import numpy as np
import pytest

from experiments import resume
from experiments.configs import default
from ge2e_jax import checkpoint, model, optim, train_step

CONFIG = model.EncoderConfig(cells=8, projection=4)


@pytest.fixture(scope="module")
def state():
  shapes = jax.eval_shape(lambda: train_step.init_params(jax.random.key(0), CONFIG))
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  return train_step.init_state(params, optim.make_optimizer())


def make_run(path, state, store_config=True):
  config = default.get_config()
  record = json.loads(json.dumps(config.to_dict()))
  checkpoint.write_config(os.fspath(path), record)
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(1, state, {"data_step": 1, "seed": 0, **({"config": record} if store_config else {})})
  ck.close()
  return config


@pytest.mark.parametrize("damage", ["missing", "empty", "garbled", "empty object"])
def test_a_lost_config_json_is_recovered_from_the_steps_copy(tmp_path, state, damage, caplog):
  config = make_run(tmp_path, state)
  path = tmp_path / checkpoint.CONFIG_FILE
  if damage == "missing":
    path.unlink()
  else:
    path.write_text({"empty": "", "garbled": "{\"lo", "empty object": "{}"}[damage])
  resume.check_config(os.fspath(tmp_path), config)  # the same run: resumes
  assert "copy stored in checkpoint step 1" in caplog.text
  config.optimizer.learning_rate = 0.5  # another experiment: refused
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"\(the config stored in its checkpoint step 1\): "
                           r"optimizer.learning_rate: .* -> 0.5"):
    resume.check_config(os.fspath(tmp_path), config)


def test_an_edited_config_json_does_not_hide_a_change(tmp_path, state):
  config = make_run(tmp_path, state)
  config.optimizer.learning_rate = 0.5
  edited = json.loads(json.dumps(config.to_dict()))
  checkpoint.write_config(os.fspath(tmp_path), edited)  # config.json now agrees with the change
  with pytest.raises(checkpoint.CheckpointMismatchError, match="checkpoint step 1"):
    resume.check_config(os.fspath(tmp_path), config)


def test_no_config_anywhere_stops_in_one_line(tmp_path, state):
  config = make_run(tmp_path, state, store_config=False)  # steps written before they stored it
  (tmp_path / checkpoint.CONFIG_FILE).unlink()
  with pytest.raises(checkpoint.CheckpointMismatchError) as err:
    resume.check_config(os.fspath(tmp_path), config)
  message = str(err.value)
  assert "\n" not in message and "config.json not found" in message
  assert "none stores its run's config" in message and "nothing was changed" in message
  assert not (tmp_path / checkpoint.CONFIG_FILE).exists()

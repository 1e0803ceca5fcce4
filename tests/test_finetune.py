"""config.train.init_from: a run starts from another run's (or an export's) params with a
fresh optimiser and step counter, and resumes from its own checkpoints, bit-identically."""

import os
import shutil

import jax
import numpy as np
import pytest

from data_pipelines import global_batch
from experiments import finetune, training_loop
from experiments.configs import td_demo
from ge2e_jax import augment, checkpoint, export_io, model, optim, train_step

TINY = model.EncoderConfig(cells=16, projection=8)


def make_config(corpus, **train_fields):
  c = td_demo.get_config()
  c.data.sources.ok.corpus, c.data.data_dir = corpus.name, corpus.data_dir
  c.data.n_speakers, c.data.n_utterances = 4, 4
  c.model.cells, c.model.projection = TINY.cells, TINY.projection
  c.train.log_every, c.train.checkpoint_every = 2, 2
  c.eval.every = 0
  c.optimizer.similarity_scale = 1.0  # so w and b visibly move in a few steps
  c.eval.conditions = ""
  for kind in augment.KINDS:  # td_demo augments; the hand-built step below does not
    c.augment[kind].prob = 0.0
  for key, value in train_fields.items():
    setattr(c.train, key, value)
  return c


def leaves(tree):
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_leaves_with_path(jax.device_get(tree))}


def assert_same(got, want):
  got, want = leaves(got), leaves(want)
  assert got.keys() == want.keys()
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.fixture(scope="module")
def source(synthetic_td, tmp_path_factory):
  """A 4-step run (the model to fine-tune) and its final params."""
  workdir = os.fspath(tmp_path_factory.mktemp("source"))
  training_loop.train_and_evaluate(make_config(synthetic_td, num_steps=4), workdir)
  step, params = checkpoint.restore_params(workdir, "latest")
  assert step == 4
  return workdir, params


@pytest.mark.slow
def test_first_step_of_a_fine_tune_starts_from_the_source_params(source, synthetic_td,
                                                                   tmp_path):
  workdir, want = source
  fresh = train_step.init_params(jax.random.fold_in(jax.random.key(0), 0), TINY)
  assert float(want["similarity"]["w"]) != float(fresh["similarity"]["w"])  # source trained
  config = make_config(synthetic_td, num_steps=1, init_from=workdir)
  state, _ = training_loop.train_and_evaluate(config, os.fspath(tmp_path / "ft"))
  assert int(state.step) == 1 and int(state.nonfinite_steps) == 0
  # The same first step by hand: the source's params, a fresh optimiser, the run's batch 0.
  mesh = train_step.make_mesh()
  optimizer = optim.make_optimizer(**config.optimizer)
  step_fn = train_step.make_train_step(TINY, optimizer, mesh)
  pipeline, _, _ = training_loop.build_input(config)
  batch = global_batch.global_batch(next(pipeline.iterator(0)), train_step.batch_sharding(mesh))
  expected, _ = step_fn(train_step.replicate(train_step.init_state(want, optimizer), mesh), batch,
                        jax.random.key(config.seed))
  assert_same(state.params, expected.params)
  assert_same(state.opt_state, expected.opt_state)


@pytest.mark.slow
def test_resumed_fine_tune_ends_bit_identical_without_the_source(source, synthetic_td,
                                                                 tmp_path):
  workdir, _ = source
  straight, _ = training_loop.train_and_evaluate(
      make_config(synthetic_td, num_steps=4, init_from=workdir), os.fspath(tmp_path / "a"))
  assert int(straight.step) == 4  # counted from the new run's start, not the source's step
  copy = os.fspath(tmp_path / "source_copy")
  shutil.copytree(workdir, copy)
  resumed_dir = os.fspath(tmp_path / "b")
  training_loop.train_and_evaluate(make_config(synthetic_td, num_steps=2, init_from=copy),
                             resumed_dir)
  shutil.rmtree(copy)  # the resumed run must restore its own step 2, not re-read init_from
  resumed, _ = training_loop.train_and_evaluate(
      make_config(synthetic_td, num_steps=4, init_from=copy), resumed_dir)
  assert_same(resumed.params, straight.params)
  assert_same(resumed.opt_state, straight.opt_state)


@pytest.fixture(scope="module")
def fresh():
  """A softmax-baseline params pytree (5 training speakers): encoder, similarity, classifier."""
  return jax.device_get(train_step.init_params(jax.random.key(8), TINY, num_speakers=5))


def shifted(tree, by=1.0):
  return jax.tree.map(lambda x: np.asarray(x) + np.asarray(by, np.asarray(x).dtype), tree)


def test_export_dir_gives_the_encoder_and_fresh_similarity(fresh, tmp_path):
  exported = shifted(fresh["encoder"])
  export_io.write_params(os.fspath(tmp_path), TINY, exported, {"source": "test"})
  params = finetune.initial_params(os.fspath(tmp_path), fresh)
  assert_same(params["encoder"], exported)
  assert_same(params["similarity"], fresh["similarity"])
  assert_same(params["classifier"], fresh["classifier"])


def test_classifier_is_taken_only_when_its_shape_matches(fresh):
  source = shifted(fresh)
  params, notes = finetune.merge(fresh, source, "src")
  assert_same(params, source)
  assert notes == ["classifier", "encoder", "similarity"]
  seven = {**fresh, "classifier": {"kernel": np.zeros((TINY.projection, 7), np.float32),
                                   "bias": np.zeros((7,), np.float32)}}
  params, notes = finetune.merge(seven, source, "src")
  assert_same(params["classifier"], seven["classifier"])
  assert_same(params["encoder"], source["encoder"])
  assert_same(params["similarity"], source["similarity"])
  assert notes[0].startswith("classifier fresh (source shapes")


def test_an_encoder_of_another_shape_or_a_bad_path_is_a_clear_error(fresh, tmp_path):
  wider = jax.tree.map(lambda x: np.zeros(np.shape(x)[:-1] + (np.shape(x)[-1] + 1,)),
                       fresh["encoder"])
  with pytest.raises(ValueError, match="src: its encoder does not fit config.model"):
    finetune.merge(fresh, {**fresh, "encoder": wider}, "src")
  with pytest.raises(FileNotFoundError, match="init_from=.*expected a training workdir"):
    finetune.initial_params(os.fspath(tmp_path), fresh)

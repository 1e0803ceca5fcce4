"""Pinned checksums: what a (seed, step) yields, on every storage, and a 20-step training run.

The expected digests were written from the code as it stood before one crop path served
every storage (then: two shard loaders, an in-graph crop for audio in RAM and a NumPy one for audio
on disk). They pin the batches themselves, so any change to the speakers, utterances, crop
lengths, crop starts or tiling a step draws, on any storage, fails here. The corpora are
conftest's fake LibriSpeech (seeded noise in lossless FLAC read by TFDS's real builder), so
the bytes do not depend on a speech synthesiser's version. The batch digests hold on any
machine (stateless TF random ops and integer copies). The trained parameters are pinned by
projections within a tolerance instead: XLA's CPU kernels round differently on different
instruction sets (AVX-512, AVX2), while one training step more or less, or any other change
to what training computes, moves them far more.
"""

import hashlib

import jax
import numpy as np
import pytest

from data_pipelines import multireader as mr
from data_pipelines import speaker_batches as sb
from data_pipelines import speaker_cache as sc
from experiments import training_loop
from experiments.configs import default

N, M = 4, 3
STORAGES = ("tfds", "memory", "cache")  # TFDS read into RAM, the cache read whole, the cache

# (crop, seed, process index, process count) -> {step: digest}, the same for every storage.
SINGLE = {
    ("td", 0, 0, 1): {0: "840cf16c9be1b0fd", 7: "9132b38fb6769389", 40: "80ebf26d1da7ed93"},
    ("ti", 5, 0, 1): {0: "10ce190bd77edc02", 3: "c273be7ce206f89c", 29: "3bc608c80c5c7d45"},
    # 100 frames: every utterance's first take is shorter, so these batches hold tiled crops.
    ((100, 100), 1, 0, 1): {2: "176b1658d5a71ec3", 11: "401add2d45f1225c"},
    ("ti", 0, 1, 2): {4: "df5b9c7be818b747", 13: "73d9e06980dd5d6e"},
}
# (mode, storage) -> {step: digest} over the two small corpora, "ok:0.7,hey:0.3", seed 2.
MULTI = {
    ("stacked", "tfds"): {0: "76a724b3dfde395d", 9: "fdb55a3a46bac39f"},
    ("sampled", "cache"): {0: "7146ef6f4ec3339e", 1: "71da485a818293cb", 2: "684b6b4e7b7ad7e7",
                           3: "adedc82687151295", 4: "37f3cec3e72090fa", 5: "acb25f4047f5c67c"},
}
# The parameters after TRAIN_STEPS steps of experiments.training_loop on the td batches read
# from the cache (storage "cache"): each leaf's two projections (_projections). Instruction
# sets change them by < 1e-7 (native vs --xla_cpu_max_isa=AVX2 or SSE4_2), 19 steps instead of
# 20 by > 7e-5.
TRAINED = {
    "['encoder']['lstmp_0']['bias']": (-0.03884753, -0.03814639),
    "['encoder']['lstmp_0']['input_kernel']": (-0.03701046, 0.12513129),
    "['encoder']['lstmp_0']['projection_kernel']": (0.12971336, 0.19321444),
    "['encoder']['lstmp_0']['recurrent_kernel']": (-0.19984669, -0.01527391),
    "['encoder']['lstmp_1']['bias']": (-0.03831309, -0.03473164),
    "['encoder']['lstmp_1']['input_kernel']": (0.05869391, 0.16118426),
    "['encoder']['lstmp_1']['projection_kernel']": (-0.01464461, 0.40455024),
    "['encoder']['lstmp_1']['recurrent_kernel']": (-0.13098880, 0.14220726),
    "['encoder']['lstmp_2']['bias']": (-0.03665010, 0.00712642),
    "['encoder']['lstmp_2']['input_kernel']": (-0.05557581, -0.10854354),
    "['encoder']['lstmp_2']['projection_kernel']": (-0.20924920, 0.21108350),
    "['encoder']['lstmp_2']['recurrent_kernel']": (-0.16460651, 0.14138086),
    "['similarity']['b']": (-5.00000000, -2.70151153),
    "['similarity']['w']": (9.99997902, 5.40301172),
}
TRAINED_ATOL = 1e-6
TRAIN_STEPS = 20


def _digest(tree) -> str:
  """The first 16 hex digits of a sha256 over every array of `tree` (path, dtype, shape)."""
  h = hashlib.sha256()
  for path, value in jax.tree_util.tree_flatten_with_path(tree)[0]:
    value = np.ascontiguousarray(np.asarray(value))
    h.update(f"{jax.tree_util.keystr(path)}:{value.dtype.str}:{value.shape};".encode())
    h.update(value.tobytes())
  return h.hexdigest()[:16]


def _projections(tree) -> dict[str, np.ndarray]:
  """Per leaf, float64 projections onto two fixed cosine directions, divided by sqrt(size)."""
  out = {}
  for path, value in jax.tree_util.tree_flatten_with_path(tree)[0]:
    flat = np.asarray(value, np.float64).ravel()
    i = np.arange(flat.size)
    directions = np.stack([np.cos(0.754877 * (j + 1) * i + j) for j in range(2)])
    out[jax.tree_util.keystr(path)] = directions @ flat / np.sqrt(flat.size)
  return out


def _cache_dir(tmp_path_factory, corpus, label):
  root = str(tmp_path_factory.mktemp(f"checksum_cache_{label}"))
  sc.build_from_corpus(corpus.name, "train", root, corpus.data_dir)
  return root


@pytest.fixture(scope="module")
def wide(tmp_path_factory, fake_librispeech_wide):
  return fake_librispeech_wide, _cache_dir(tmp_path_factory, fake_librispeech_wide, "wide")


def _pipeline(corpus, cache_dir, storage, **kwargs):
  where = {"tfds": {}, "memory": dict(cache_dir=cache_dir),
           "cache": dict(cache_dir=cache_dir, storage="cache")}[storage]
  return sb.speaker_batches(corpus.name, "train", n_speakers=N, n_utterances=M,
                            data_dir=corpus.data_dir, provenance=True, **where, **kwargs)


def _at(pipeline, step):
  it = pipeline.iterator(start_step=step)
  batch = next(it)
  it.close()
  return batch


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("case", list(SINGLE), ids=str)
def test_single_source_batches_match_their_pinned_checksums(wide, storage, case):
  crop, seed, index, count = case
  pipeline = _pipeline(*wide, storage, crop=crop, seed=seed, process_index=index,
                       process_count=count)
  got = {step: _digest(_at(pipeline, step)) for step in SINGLE[case]}
  assert got == SINGLE[case]


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory, fake_librispeech, fake_librispeech_other):
  corpora = {"ok": fake_librispeech, "hey": fake_librispeech_other}
  return {name: (c, _cache_dir(tmp_path_factory, c, name)) for name, c in corpora.items()}


@pytest.mark.parametrize("case", list(MULTI), ids=str)
def test_multireader_batches_match_their_pinned_checksums(two_sources, case):
  mode, storage = case
  sources = {name: _pipeline(*where, storage, crop="td", seed=k)
             for k, (name, where) in enumerate(two_sources.items())}
  reader = mr.MultiReader(sources, "ok:0.7,hey:0.3", mode=mode, seed=2)
  batches = {step: _at(reader, step) for step in MULTI[case]}
  assert {step: _digest(b) for step, b in batches.items()} == MULTI[case]
  if mode == "sampled":
    assert {int(b["source"]) for b in batches.values()} == {0, 1}


@pytest.mark.slow
def test_a_short_training_run_ends_on_its_pinned_parameters(wide, tmp_path):
  corpus, cache_dir = wide
  config = default.get_config()
  config.data.sources = {"ok": {"corpus": corpus.name}}
  config.data.data_dir = corpus.data_dir
  config.data.n_speakers, config.data.n_utterances = N, M
  config.data.storage, config.data.cache_dir = "cache", cache_dir
  config.model.cells, config.model.projection = 16, 8
  config.train.num_steps = TRAIN_STEPS
  config.train.log_every = config.train.checkpoint_every = TRAIN_STEPS
  config.eval.every = 0
  state, _ = training_loop.train_and_evaluate(config, str(tmp_path))
  got = _projections(jax.device_get(state.params))
  assert set(got) == set(TRAINED)
  for leaf, expected in TRAINED.items():
    np.testing.assert_allclose(got[leaf], expected, rtol=0, atol=TRAINED_ATOL, err_msg=leaf)

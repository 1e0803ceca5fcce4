"""MultiReader over two small generated corpora read by TFDS's librispeech builder (conftest).

Both corpora share speaker and utterance ids, so where a crop came from is proven by finding
it in that source's raw audio (read straight from TFDS through the adapter), not by its id.
"""

import numpy as np
import pytest

from data_pipelines import multireader as mr
from data_pipelines import source_specs
from data_pipelines import speaker_batches as sb

N, M = 4, 3


def _raw(corpus):
  return {utterance: ints for utterance, (_, ints, _, split) in corpus.written.items()
          if split.startswith("train")}


def _is_slice(crop, raw):
  """`crop` equals raw[s:s+L] / 32768 for some s, or raw tiled from its start."""
  crop = np.round(crop * 32768.0).astype(np.int64)
  raw = raw.astype(np.int64)
  if raw.size < crop.size:
    return np.array_equal(crop, np.resize(raw, crop.size))
  starts = np.flatnonzero(raw[:raw.size - crop.size + 1] == crop[0])
  return any(np.array_equal(raw[s:s + crop.size], crop) for s in starts)


@pytest.fixture(scope="module")
def corpora(fake_librispeech, fake_librispeech_other):
  return {"ok": fake_librispeech, "hey": fake_librispeech_other}


@pytest.fixture(scope="module")
def raws(corpora):
  return {name: _raw(c) for name, c in corpora.items()}


@pytest.fixture(scope="module")
def shards(corpora):
  return {name: sb.load_shard(sb.tfds_examples(c.name, "train", c.data_dir), min_utterances=M)
          for name, c in corpora.items()}


def _sources(shards, crop="td", **kwargs):
  return {name: sb.SpeakerBatches(shard, n_speakers=N, n_utterances=M, crop=crop, seed=0,
                                  provenance=True, **kwargs)
          for name, shard in shards.items()}


def _take(reader, n, start=0):
  it = reader.iterator(start)
  return [next(it) for _ in range(n)]


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ("ok", "is not 'name:weight'"),
    ("ok=0.5,hey:0.5", "is not 'name:weight'"),
    ("ok:0.5:1", "weight '0.5:1' of 'ok' is not a number"),
    ("ok:0.5,,hey:0.5", "is not 'name:weight'"),
    ("ok:abc", "'abc' of 'ok' is not a number"),
    ("ok:-1,hey:1", "weight '-1' of 'ok' must be a finite number > 0"),
    ("ok:0,hey:1", "weight '0' of 'ok' must be a finite number > 0"),
    ("ok:nan", "must be a finite number > 0"),
    ("ok:1,okay:1", r"unknown source 'okay'; sources are \['ok', 'hey'\]"),
    ("ok:1,ok:2", "'ok' is given twice"),
])
def test_weight_spec_errors_say_what_is_wrong(spec, message):
  with pytest.raises(ValueError, match=message):
    mr.parse_weights(spec, ["ok", "hey"])


def test_weight_spec_parses_in_given_order():
  assert mr.parse_weights(" hey:0.25 , ok:1e0", ["ok", "hey"]) == {"hey": 0.25, "ok": 1.0}


def test_weights_as_a_mapping_are_checked_alike():
  assert mr.parse_weights({"hey": 0.25, "ok": 1}, ["ok", "hey"]) == {"hey": 0.25, "ok": 1.0}
  with pytest.raises(ValueError, match="weight '0.0' of 'ok' must be a finite number > 0"):
    mr.parse_weights({"ok": 0.0}, ["ok", "hey"])


def test_sources_section_fills_defaults_and_names_bad_entries():
  data = {"sources": {"ls": {"corpus": "librispeech/lazy_decode:2.1.2"},
                      "ok": {"corpus": "synthetic_voices/td_ok_computer", "weight": 0.5}}}
  assert source_specs.sources(data) == {
      "ls": source_specs.Source("librispeech/lazy_decode:2.1.2", 1.0),
      "ok": source_specs.Source("synthetic_voices/td_ok_computer", 0.5)}
  with pytest.raises(ValueError, match=r"config.data.sources.ok.weight=-1: expected a finite "
                                       r"number > 0"):
    source_specs.sources({"sources": {"ok": {"corpus": "a", "weight": -1}}})


def test_sources_of_a_config_written_before_they_were_a_section():
  """config.json of older runs: "name:corpus,..." and data.weights (evaluate reads them)."""
  data = {"sources": "ls: librispeech/lazy_decode:2.1.2,ok:synthetic_voices/td_ok_computer",
          "weights": "ls:1.0,ok:0.5"}
  assert source_specs.sources(data) == {
      "ls": source_specs.Source("librispeech/lazy_decode:2.1.2", 1.0),
      "ok": source_specs.Source("synthetic_voices/td_ok_computer", 0.5)}
  assert source_specs.sources({"sources": "ok:a", "weights": ""})["ok"].weight == 1.0
  with pytest.raises(ValueError, match="config.data.sources 'ok:a,ok:b': source 'ok' is given"):
    source_specs.sources({"sources": "ok:a,ok:b"})
  with pytest.raises(ValueError, match="item 'ok' is not 'name:tfds_name'"):
    source_specs.sources({"sources": "ok"})


def test_stacked_blocks_have_shapes_weights_and_only_their_sources_audio(shards, raws):
  sources = _sources(shards)
  reader = mr.MultiReader(sources, "ok:0.7,hey:0.3", mode="stacked", seed=0)
  assert reader.names == ("ok", "hey")
  for batch in _take(reader, 4):
    assert batch["audio"].shape == (2, N, M, 400 + 79 * 160)
    assert batch["audio"].dtype == np.float32
    assert batch["speaker"].shape == (2, N) and batch["speaker"].dtype == np.int32
    np.testing.assert_array_equal(batch["weights"], np.array([0.7, 0.3], np.float32))
    assert batch["weights"].dtype == np.float32
    for k, name in enumerate(reader.names):
      assert len(set(batch["speaker"][k].tolist())) == N
      for j in range(N):
        for i in range(M):
          utt = sources[name].utterances[batch["utterance"][k, j, i]]
          assert _is_slice(batch["audio"][k, j, i], raws[name][utt]), (name, utt)
  # The check above can tell the sources apart: the same id holds different audio.
  utt = sources["ok"].utterances[0]
  assert not np.array_equal(raws["ok"][utt][:1000], raws["hey"][utt][:1000])


def test_stacked_ti_crop_is_shared_by_sources_and_varies(shards):
  reader = mr.MultiReader(_sources(shards, crop="ti"), "ok:1,hey:1", seed=2)
  lengths = [b["audio"].shape[-1] for b in _take(reader, 20)]
  assert set(lengths) <= {400 + (f - 1) * 160 for f in range(140, 181)}
  assert len(set(lengths)) > 5


def test_sources_on_one_corpus_draw_independently(shards):
  same = {"a": shards["ok"], "b": shards["ok"]}
  batch = _take(mr.MultiReader(_sources(same), "a:1,b:1"), 1)[0]
  assert not np.array_equal(batch["utterance"][0], batch["utterance"][1])


def test_sampled_frequencies_follow_weights(shards):
  # One-frame crops keep 2000 steps cheap; the source draw does not depend on the crop.
  reader = mr.MultiReader(_sources(shards, crop=(1, 1)), "ok:3,hey:1", mode="sampled", seed=1)
  picks = np.array([b["source"] for b in _take(reader, 2000)])
  # Binomial(2000, 0.75): sd = sqrt(0.75 * 0.25 / 2000) = 0.0097; 5 sd = 0.048 bounds the
  # frequency with a false-failure chance under 1e-6 (uniform picking would give 0.5).
  assert abs(np.mean(picks == 0) - 0.75) < 0.048
  assert set(picks.tolist()) == {0, 1}


def test_sampled_batch_comes_from_the_named_source(shards, raws):
  sources = _sources(shards)
  reader = mr.MultiReader(sources, "ok:1,hey:1", mode="sampled", seed=3)
  seen = set()
  for batch in _take(reader, 8):
    assert batch["audio"].shape == (N, M, 400 + 79 * 160) and batch["speaker"].shape == (N,)
    name = reader.names[int(batch["source"])]
    seen.add(name)
    for j in range(N):
      utt = sources[name].utterances[batch["utterance"][j, 0]]
      assert _is_slice(batch["audio"][j, 0], raws[name][utt])
  assert seen == {"ok", "hey"}


@pytest.mark.parametrize("mode", mr.MODES)
def test_resume_continues_exactly(shards, mode):
  sources = _sources(shards, crop="ti")
  it = mr.MultiReader(sources, "ok:2,hey:1", mode=mode, seed=4).iterator()
  for _ in range(5):
    next(it)
  expected = [next(it) for _ in range(4)]
  resumed = mr.MultiReader(sources, "ok:2,hey:1", mode=mode, seed=4).iterator(it.position - 4)
  for a in expected:
    b = next(resumed)
    assert set(a) == set(b)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_mismatched_sources_and_modes_are_rejected(shards):
  sources = _sources(shards)
  sources["hey"] = sb.SpeakerBatches(shards["hey"], n_speakers=2, n_utterances=M, crop="td",
                                     seed=0)
  with pytest.raises(ValueError, match="source 'hey' has .* they must match"):
    mr.MultiReader(sources, "ok:1,hey:1")
  with pytest.raises(ValueError, match="mode must be one of"):
    mr.MultiReader(_sources(shards), "ok:1,hey:1", mode="mixed")

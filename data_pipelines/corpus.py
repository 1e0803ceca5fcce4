"""One way to open a prepared speech corpus: ``open_split(name, split, data_dir)``.

Training, held-out evaluation, the ablations, the demo and the benchmarks all read corpora
through here, so a corpus that works for one works for all. ``name`` is a TFDS name, with
an optional config (``"synthetic_voices/td_ok_computer"``, ``"librispeech/lazy_decode"``).
This package's builders (``synthetic_voices``, ``speaker_folders``) are read as they are;
TFDS's own ``librispeech`` and ``voxceleb`` go through ``builders.adapters``, which maps
them to the same features and to speaker-disjoint ``train`` / ``test`` splits:

  audio      int16 (samples,), mono, 16 kHz
  speaker    string, unique within the corpus
  utterance  string, unique within the corpus
  text       string, "" when unknown

Naive pooling: ``"a+b"`` names the union of corpora ``a`` and ``b`` (same split of each),
one speaker pool; ids become ``"a:<id>"``, so speakers of two corpora never merge.
"""

from __future__ import annotations

import functools
from typing import Iterator

import tensorflow as tf
import tensorflow_datasets as tfds

import data_pipelines.builders  # pylint: disable=unused-import  # registers our builders
from data_pipelines.builders import adapters


POOL_SEPARATOR = "+"


def builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The prepared TFDS builder of ``name`` in ``data_dir``; a clear error if it is not built."""
  try:
    found = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError as err:
    raise ValueError(f"corpus {name!r}: no such TFDS dataset ({str(err).splitlines()[0]})") from None
  if not found.is_prepared():
    raise FileNotFoundError(
        f"corpus {name!r} is not prepared under data_dir={found.data_dir!r}; build it first, "
        f"e.g. python -m data_pipelines.builders.tfds_build <builder.py> --config=... "
        f"--data_dir=...")
  return found


def open_split(name: str, split: str, data_dir: str | None = None, *,
               with_audio: bool = True) -> tf.data.Dataset:
  """The ``split`` of corpus ``name`` with the common features, in order.

  ``split`` is "train" or "test", or a held-out split of this package's builders
  (synthetic_voices: "test_unseen_lang", "test_mbrola").

  ``with_audio=False`` gives only speaker, utterance and text (this package's builders then
  skip decoding the audio; adapted TFDS corpora still read it).
  """
  parts = name.split(POOL_SEPARATOR)
  if len(parts) > 1:
    return functools.reduce(tf.data.Dataset.concatenate, [
        open_split(part, split, data_dir, with_audio=with_audio).map(
            functools.partial(_prefixed, f"{part}:")) for part in parts])
  return adapters.as_dataset(builder(name, data_dir), split, with_audio=with_audio)


def _prefixed(prefix: str, example: dict) -> dict:
  return {**example, "speaker": prefix + example["speaker"],
          "utterance": prefix + example["utterance"]}


def iterate(name: str, split: str, data_dir: str | None = None) -> Iterator[dict]:
  """Numpy examples of ``open_split``: audio int16, speaker/utterance/text as ``str``."""
  for ex in open_split(name, split, data_dir).as_numpy_iterator():
    yield {"audio": ex["audio"], "speaker": ex["speaker"].decode(),
           "utterance": ex["utterance"].decode(), "text": ex["text"].decode()}

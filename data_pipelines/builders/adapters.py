"""Any prepared corpus as a tf.data.Dataset with the common features.

`as_dataset(builder, "train"|"test"|...)` gives {audio int16, speaker, utterance,
text} with speaker-disjoint splits for this package's builders (synthetic_voices,
hts_voices, speaker_folders: read as they are) and for TFDS's own corpora, for a user who
has prepared those with TFDS:
  librispeech  train = train_clean100 + train_clean360 + train_other500,
               test = test_clean (LibriSpeech subsets share no speaker).
               Both TFDS configs work: `default` (decoded int16) and
               `lazy_decode` (flac bytes, decoded here with soundfile).
  voxceleb     TFDS's splits are for identification and share speakers, so all
               three are read and split by speaker: test = id10270-id10309 (the
               official verification speakers), train = everyone else.
               utterance = "<speaker>/<youtube_id>/<tfds_id>" (TFDS keeps no file name).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from ge2e_jax import audio

LIBRISPEECH_SPLITS = {"train": "train_clean100+train_clean360+train_other500",
                      "test": "test_clean"}
VOXCELEB_SPLITS = "train+validation+test"
NATIVE_BUILDERS = ("synthetic_voices", "hts_voices", "speaker_folders", "manifest",
                   "recorded_voices")


def as_dataset(builder: tfds.core.DatasetBuilder, split: str, shuffle_files: bool = False,
               with_audio: bool = True) -> tf.data.Dataset:
  """A prepared builder's `split` with the common features (see module doc).

  `with_audio=False` drops `audio` (native builders then skip decoding it).
  """
  # Native builders may hold more held-out splits (synthetic_voices' test_unseen_lang, ...).
  known = tuple(builder.info.splits) if builder.name in NATIVE_BUILDERS else common.SPLITS
  if split not in known:
    raise ValueError(f"split must be one of {known}, got {split!r}")
  if builder.name in NATIVE_BUILDERS:
    decoders = None if with_audio else tfds.decode.PartialDecoding(
        {"speaker": True, "utterance": True, "text": True})
    return builder.as_dataset(split=split, shuffle_files=shuffle_files, decoders=decoders)
  if builder.name == "librispeech":
    ds = _librispeech(builder, split, shuffle_files)
  elif builder.name == "voxceleb":
    ds = _voxceleb(builder, split, shuffle_files)
  else:
    raise ValueError(f"no adapter for TFDS dataset {builder.name!r}; expected one of "
                     f"{', '.join(NATIVE_BUILDERS)}, librispeech, voxceleb")
  return ds if with_audio else ds.map(lambda ex: {k: v for k, v in ex.items() if k != "audio"})


def _check_rate(builder, feature: str) -> None:
  rate = builder.info.features[feature].sample_rate
  if rate != common.SAMPLE_RATE:
    raise ValueError(f"{builder.name}: feature {feature!r} is at {rate} Hz, "
                     f"expected {common.SAMPLE_RATE}")


def _decode_flac_int16(data: bytes) -> np.ndarray:
  wav, sr = audio.decode_audio(data, name="librispeech flac bytes")
  if sr != common.SAMPLE_RATE:
    raise ValueError(f"librispeech audio at {sr} Hz, expected {common.SAMPLE_RATE}")
  return audio.to_int16(wav)


def _librispeech(builder, split, shuffle_files) -> tf.data.Dataset:
  _check_rate(builder, "speech")
  lazy = builder.info.features["speech"].to_json_content().lazy_decode
  decoders = {"speech": tfds.decode.SkipDecoding()} if lazy else None
  ds = builder.as_dataset(split=LIBRISPEECH_SPLITS[split], decoders=decoders,
                          shuffle_files=shuffle_files)

  def convert(ex):
    if lazy:
      speech = tf.numpy_function(_decode_flac_int16, [ex["speech"]], tf.int16)
      speech.set_shape([None])
    else:
      speech = tf.cast(ex["speech"], tf.int16)
    return {"audio": speech, "speaker": tf.strings.as_string(ex["speaker_id"]),
            "utterance": ex["id"], "text": ex["text"]}

  return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _voxceleb(builder, split, shuffle_files) -> tf.data.Dataset:
  _check_rate(builder, "audio")
  ds = builder.as_dataset(split=VOXCELEB_SPLITS, shuffle_files=shuffle_files,
                          read_config=tfds.ReadConfig(add_tfds_id=True))
  test_speakers = tf.constant(common.VOXCELEB1_TEST_SPEAKERS)

  def convert(ex):
    # TFDS stores speaker "id1NNNN" as label NNNN (its int(speaker[3:])).
    speaker = tf.strings.join(["id", tf.strings.as_string(ex["label"] + 10000)])
    wav = tf.cast(tf.clip_by_value(ex["audio"], -32768, 32767), tf.int16)
    return {"audio": wav, "speaker": speaker,
            "utterance": tf.strings.join([speaker, ex["youtube_id"], ex["tfds_id"]], "/"),
            "text": tf.constant("")}

  def in_split(ex):
    is_test = tf.reduce_any(tf.equal(ex["speaker"], test_speakers))
    return is_test if split == "test" else tf.logical_not(is_test)

  return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True).filter(in_split)

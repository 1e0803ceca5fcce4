"""``config.data``: what a run trains on, each setting with its default, check and help.

``config.data.sources`` is one section, ``{name: {"corpus": tfds_name, "weight": alpha}}``:
one source trains on plain GE2E batches, several are combined by MultiReader with their
weights. ``sources(config.data)`` reads it as ``{name: Source}``; it also reads the run
configs written before it was a section (``"name:corpus,..."`` and ``data.weights``).

MultiReader still takes its weights as ``{name: weight}`` or ``"name:weight,..."``
(``parse_weights``): comma-separated ``name:value`` items, names unique, in the order given.
A value may hold ``:`` (a TFDS version, ``librispeech/lazy_decode:2.1.2``), not ``,``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping

from ge2e_jax import settings

WEIGHT = settings.number(0, low_open=True)
MODES = ("stacked", "sampled")
STORAGES = ("memory", "cache")


@dataclasses.dataclass(frozen=True)
class Source:
  """One training corpus of ``config.data.sources``."""
  corpus: str = settings.required(
      settings.text("a prepared corpus's TFDS name ('builder/config')", empty=False),
      "TFDS name of a prepared corpus (its 'train' split is read): a builder of "
      "data_pipelines/builders, or TFDS librispeech/voxceleb")
  weight: float = settings.setting(1.0, WEIGHT, "MultiReader weight alpha (several sources)")


def source(corpus: str, weight: float = Source.weight) -> dict:
  """A ``config.data.sources`` entry in config form, every field given (so each can be
  overridden from the command line: ``--config.data.sources.<name>.weight=0.5``)."""
  return dataclasses.asdict(Source(corpus, weight))


@dataclasses.dataclass(frozen=True)
class DataOptions:
  """``config.data``: the training corpora and the batch."""
  data_dir: str = settings.setting("", settings.text("a directory ('' for the TFDS default)"),
                                   "TFDS data_dir; '' = TFDS default (~/tensorflow_datasets)")
  sources: dict = settings.named(
      Source, {"ok": Source("synthetic_voices/td_ok_computer")},
      "{name: {corpus, weight}}: one source = plain GE2E batches, several = MultiReader")
  mode: str = settings.setting("stacked", settings.one_of(*MODES),
                               "MultiReader: 'stacked' (the paper's) or 'sampled'")
  n_speakers: int = settings.setting(64, settings.integer(2, note="speakers per batch"),
                                     "N: speakers per batch")
  n_utterances: int = settings.setting(10, settings.integer(2, note="utterances per speaker"),
                                       "M: utterances per speaker")
  crop: str = settings.setting("td", settings.one_of("td", "ti"),
                               "'td' (80 frames) or 'ti' ([140, 180] frames per batch)")
  storage: str = settings.setting(
      "memory", settings.one_of(*STORAGES),
      "where the training audio lives: 'memory' (each host's speaker shard in RAM) or 'cache' "
      "(read per batch from a speaker cache on disk; RAM holds its index only)")
  cache_dir: str = settings.setting(
      "", settings.text("a directory of speaker caches ('' for none)"),
      "the caches built by `python -m data_pipelines.build_cache`; with 'memory' it makes "
      "start-up read only the host's shard instead of the whole TFDS split")


def sources(data) -> dict[str, Source]:
  """{name: Source} of a config's ``data`` section (a ConfigDict or a config.json dict)."""
  spec = data["sources"]
  if isinstance(spec, str):  # a config written when sources and weights were two strings
    weights = parse_weights(data["weights"], None) if data.get("weights") else {}
    return {name: Source(corpus, weights.get(name, Source.weight))
            for name, corpus in parse(spec, "config.data.sources", "tfds_name").items()}
  return settings.build(DataOptions, {"sources": spec}, "data").sources


def upgraded(config: dict) -> dict:
  """A config.json dict with ``data.sources`` as today's section (a config written when it and
  ``data.weights`` were two strings: converted, weights folded in), else as it is."""
  data = config.get("data")
  if not isinstance(data, dict) or not isinstance(data.get("sources"), str):
    return config
  section = {name: dataclasses.asdict(spec) for name, spec in sources(data).items()}
  data = {key: value for key, value in data.items() if key != "weights"}
  return dict(config, data=dict(data, sources=section))


_ITEM = re.compile(r"^\s*([^:,\s]+)\s*:\s*([^,\s]+)\s*$")


def parse(spec: str, what: str, value_name: str, *,
          convert: Callable[[str], object] | None = None,
          names: Iterable[str] | None = None) -> dict:
  """``{name: convert(value)}``; a ValueError naming ``what`` and the bad item otherwise.

  ``names``: the names allowed (any if None). ``convert`` raises ValueError with the reason.
  """
  items = []
  for part in spec.split(",") if spec and spec.strip() else ():
    match = _ITEM.match(part)
    if not match:
      raise ValueError(f"{what} {spec!r}: item {part!r} is not 'name:{value_name}'")
    items.append(match.groups())
  return checked(items, what, repr(spec), value_name, convert=convert, names=names)


def checked(items, what: str, shown: str, value_name: str, *,
            convert: Callable[[object], object] | None = None,
            names: Iterable[str] | None = None) -> dict:
  """``{name: convert(value)}`` of (name, value) ``items``, as ``parse`` checks them;
  ``shown``: the spec as the errors quote it."""
  known = None if names is None else list(names)
  if not items:
    over = "" if known is None else f" over {known}"
    raise ValueError(f"{what} is empty; expected 'name:{value_name},...'{over}")
  parsed = {}
  for name, value in items:
    if known is not None and name not in known:
      raise ValueError(f"{what} {shown}: unknown source {name!r}; sources are {known}")
    if name in parsed:
      raise ValueError(f"{what} {shown}: source {name!r} is given twice")
    if convert is not None:
      try:
        value = convert(value)
      except ValueError as err:
        raise ValueError(
            f"{what} {shown}: {value_name} {str(value)!r} of {name!r} {err}") from None
    parsed[name] = value
  return parsed


def _weight(value) -> float:
  try:
    weight = float(value)
  except ValueError:
    raise ValueError("is not a number") from None
  if not WEIGHT.test(weight):
    raise ValueError(f"must be {WEIGHT.expected}")
  return weight


def parse_weights(spec: str | Mapping[str, float], names) -> dict[str, float]:
  """MultiReader weights, ``{name: weight}`` or ``"name:weight,..."`` -> {name: weight > 0},
  names among ``names`` (any if None), in the order given."""
  if isinstance(spec, Mapping):
    return checked(list(spec.items()), "MultiReader weights", repr(dict(spec)), "weight",
                   convert=_weight, names=names)
  return parse(spec, "MultiReader weights", "weight", convert=_weight, names=names)

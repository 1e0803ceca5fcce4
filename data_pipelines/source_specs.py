"""``config.data.sources`` and ``config.data.weights``: ``"name:value,name:value"`` -> dicts.

One grammar for both: comma-separated ``name:value`` items, names unique, in the order given.
A value may hold ``:`` (a TFDS version, ``librispeech/lazy_decode:2.1.2``), not ``,``.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import numpy as np

_ITEM = re.compile(r"^\s*([^:,\s]+)\s*:\s*([^,\s]+)\s*$")


def parse(spec: str, what: str, value_name: str, *,
          convert: Callable[[str], object] | None = None,
          names: Iterable[str] | None = None) -> dict:
  """``{name: convert(value)}``; a ValueError naming ``what`` and the bad item otherwise.

  ``names``: the names allowed (any if None). ``convert`` raises ValueError with the reason.
  """
  known = None if names is None else list(names)
  over = "" if known is None else f" over {known}"
  if not spec or not spec.strip():
    raise ValueError(f"{what} is empty; expected 'name:{value_name},...'{over}")
  parsed = {}
  for part in spec.split(","):
    match = _ITEM.match(part)
    if not match:
      raise ValueError(f"{what} {spec!r}: item {part!r} is not 'name:{value_name}'")
    name, value = match.groups()
    if known is not None and name not in known:
      raise ValueError(f"{what} {spec!r}: unknown source {name!r}; sources are {known}")
    if name in parsed:
      raise ValueError(f"{what} {spec!r}: source {name!r} is given twice")
    if convert is not None:
      try:
        value = convert(value)
      except ValueError as err:
        raise ValueError(f"{what} {spec!r}: {value_name} {value!r} of {name!r} {err}") from None
    parsed[name] = value
  return parsed


def parse_sources(spec: str) -> dict[str, str]:
  """``config.data.sources`` -> {source name: TFDS name (``builder/config``)}."""
  return parse(spec, "config.data.sources", "tfds_name")


def _positive(text: str) -> float:
  try:
    weight = float(text)
  except ValueError:
    raise ValueError("is not a number") from None
  if not np.isfinite(weight) or weight <= 0:
    raise ValueError("must be a finite number > 0")
  return weight


def parse_weights(spec: str, names) -> dict[str, float]:
  """MultiReader weights (``config.data.weights``) -> {name: weight > 0}, names among ``names``."""
  return parse(spec, "MultiReader weights", "weight", convert=_positive, names=names)

"""Each setting defined once: a dataclass field carries its default, its check and its help.

The library's option dataclasses (encoder, optimiser, augmentation kinds, ...) declare their
fields with ``setting(default, check, help)``. Run configs (ml_collections) take their
defaults from ``defaults(cls)`` and ``problems(cls, values, "x.y")`` checks a config section
against the same fields, naming each bad value as ``config.x.y.field`` -- so a default, a
range or a help text is written in one place and every consumer reads it from there.
"""

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple


class Check(NamedTuple):
  """``test(value) -> bool`` and what a valid value is, for the one-line error."""
  test: Callable[[Any], bool]
  expected: str


class SettingError(ValueError):
  """Values a run cannot use; the message names each as ``config.x.y``."""


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(low: int = -2**63, high: float = math.inf, note: str = "") -> Check:
  expected = (f"an integer in [{low}, {high}]" if high != math.inf else f"an integer >= {low}")
  return Check(lambda v: _is_int(v) and low <= v <= high,
               expected + (f" ({note})" if note else ""))


def number(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
           note: str = "") -> Check:
  """A finite number in [low, high] ((low, high] with ``low_open``)."""
  def test(v):
    return _is_number(v) and (v > low if low_open else v >= low) and v <= high
  if low == -math.inf and high == math.inf:
    expected = "a finite number"
  elif high == math.inf:
    expected = f"a finite number {'>' if low_open else '>='} {low:g}"
  else:
    expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}]"
  return Check(test, expected + (f" ({note})" if note else ""))


def one_of(*values) -> Check:
  return Check(lambda v: v in values, f"one of {values}")


def boolean() -> Check:
  return Check(lambda v: isinstance(v, bool), "True or False")


def text(expected: str = "a string") -> Check:
  return Check(lambda v: isinstance(v, str), expected)


def span(low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
         integers: bool = False) -> Check:
  """A (low, high) pair inside [low, high] with pair[0] <= pair[1]."""
  item = integer(int(low)) if integers else number(low, high, low_open=low_open)
  def test(v):
    return (isinstance(v, (tuple, list)) and len(v) == 2 and all(item.test(x) for x in v)
            and v[0] <= v[1])
  return Check(test, f"a (low, high) pair with low <= high, each {item.expected.split(' ', 1)[1]}")


def optional(check: Check) -> Check:
  return Check(lambda v: v is None or check.test(v), f"None or {check.expected}")


def setting(default, check: Check, help: str = ""):  # pylint: disable=redefined-builtin
  """A dataclass field with its check and help text."""
  return dataclasses.field(default=default, metadata={"check": check, "help": help})


def required(check: Check, help: str = ""):  # pylint: disable=redefined-builtin
  """A dataclass field without a default (a preset or the caller gives it)."""
  return dataclasses.field(metadata={"check": check, "help": help})


def defaults(cls) -> dict:
  """{field: default} of a settings dataclass, nested dataclasses as dicts (config form)."""
  values = {}
  for f in dataclasses.fields(cls):
    if f.default is dataclasses.MISSING:
      continue
    values[f.name] = (dataclasses.asdict(f.default) if dataclasses.is_dataclass(f.default)
                      else f.default)
  return values


def help_text(cls) -> dict:
  return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _as_dict(values):
  """A plain dict of a Mapping or an ml_collections ConfigDict (no ml_collections import)."""
  if hasattr(values, "to_dict"):
    return values.to_dict()
  return dict(values) if isinstance(values, Mapping) else None


def problems(cls, values, path: str) -> list:
  """Every field of ``values`` (config section ``path``) that ``cls`` could not use."""
  values = _as_dict(values)
  if values is None:
    return [f"config.{path}: expected a section of fields"]
  known = {f.name: f for f in dataclasses.fields(cls)}
  found = [f"config.{path}: unknown fields {sorted(set(values) - set(known))}; expected "
           f"some of {sorted(known)}"] if set(values) - set(known) else []
  for name, f in known.items():
    if name not in values:
      if f.default is dataclasses.MISSING:
        found.append(f"config.{path}.{name} is missing")
      continue
    value = values[name]
    if dataclasses.is_dataclass(f.default):
      found += problems(type(f.default), value, f"{path}.{name}")
      continue
    check = f.metadata.get("check")
    if check is not None and not check.test(value):
      found.append(f"config.{path}.{name}={value!r}: expected {check.expected}")
  return found


def build(cls, values, path: str):
  """``cls(**values)`` after ``problems``; raises SettingError naming every bad value."""
  found = problems(cls, values, path)
  if found:
    raise SettingError("; ".join(found))
  values = _as_dict(values)
  kwargs = {}
  for f in dataclasses.fields(cls):
    if f.name not in values:
      continue
    value = values[f.name]
    if dataclasses.is_dataclass(f.default):
      value = build(type(f.default), value, f"{path}.{f.name}")
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[f.name] = value
  return cls(**kwargs)

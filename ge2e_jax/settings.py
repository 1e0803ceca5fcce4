"""Each setting defined once: a dataclass field carries its default, its check and its help.

The library's option dataclasses (encoder, optimiser, augmentation kinds, ...) declare their
fields with ``setting(default, check, help)``. Run configs (ml_collections) take their
defaults from ``defaults(cls)`` and ``problems(cls, values, "x.y")`` checks a config section
against the same fields, naming each bad value as ``config.x.y.field`` -- so a default, a
range or a help text is written in one place and every consumer reads it from there.
A check of several fields of one dataclass is a relation its ``__post_init__`` passes to
``check(self, path, *relations)``: built directly or from a config, the same checks run.
``named(cls, ...)`` is a field of named entries (``config.data.sources``: name -> Source).
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
           high_open: bool = False, note: str = "") -> Check:
  """A finite number in [low, high] (open at an end with ``low_open`` / ``high_open``)."""
  def test(v):
    return (_is_number(v) and (v > low if low_open else v >= low)
            and (v < high if high_open else v <= high))
  if low == -math.inf and high == math.inf:
    expected = "a finite number"
  elif high == math.inf:
    expected = f"a finite number {'>' if low_open else '>='} {low:g}"
  elif low == -math.inf:
    expected = f"a finite number {'<' if high_open else '<='} {high:g}"
  else:
    expected = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                f"{')' if high_open else ']'}")
  return Check(test, expected + (f" ({note})" if note else ""))


def one_of(*values) -> Check:
  return Check(lambda v: v in values, f"one of {values}")


def boolean() -> Check:
  return Check(lambda v: isinstance(v, bool), "True or False")


def text(expected: str = "a string", *, empty: bool = True) -> Check:
  return Check(lambda v: isinstance(v, str) and (empty or v != ""), expected)


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


def named(cls, default: Mapping, help: str = ""):  # pylint: disable=redefined-builtin
  """A field of ``{name: cls}`` entries (at least one), each entry checked as ``cls``'s fields.

  ``default``: {name: cls instance}. Config form: {name: {field: value}}.
  """
  return dataclasses.field(default_factory=lambda: dict(default),
                           metadata={"each": cls, "help": help})


def required(check: Check, help: str = ""):  # pylint: disable=redefined-builtin
  """A dataclass field without a default (a preset or the caller gives it)."""
  return dataclasses.field(metadata={"check": check, "help": help})


def _default(f):
  if f.default_factory is not dataclasses.MISSING:
    return f.default_factory()
  return f.default


def defaults(cls) -> dict:
  """{field: default} of a settings dataclass, nested dataclasses as dicts (config form)."""
  values = {}
  for f in dataclasses.fields(cls):
    default = _default(f)
    if default is dataclasses.MISSING:
      continue
    if dataclasses.is_dataclass(default):
      default = dataclasses.asdict(default)
    elif "each" in f.metadata:
      default = {name: dataclasses.asdict(entry) for name, entry in default.items()}
    values[f.name] = default
  return values


def help_text(cls) -> dict:
  return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _as_dict(values):
  """A plain dict of a Mapping or an ml_collections ConfigDict (no ml_collections import)."""
  if hasattr(values, "to_dict"):
    return values.to_dict()
  return dict(values) if isinstance(values, Mapping) else None


def _join(path: str, field: str) -> str:
  """Field ``y`` of section ``x``: ``x.y`` (section "": the config's top level)."""
  return ".".join(part for part in (path, field) if part)


def _name(path: str, field: str = "") -> str:
  """How an error names a field: ``config.x.y``."""
  return "config." + _join(path, field) if path or field else "config"


def _field_problems(cls, values: dict, path: str, complete: bool = False) -> list:
  """What each field's own check refuses (nested sections and ``named`` entries included)."""
  known = {f.name: f for f in dataclasses.fields(cls)}
  found = [f"{_name(path)}: unknown fields {sorted(set(values) - set(known))}; expected "
           f"some of {sorted(known)}"] if set(values) - set(known) else []
  for name, f in known.items():
    if name not in values:
      if complete or _default(f) is dataclasses.MISSING:
        found.append(f"{_name(path, name)} is missing")
      continue
    value = values[name]
    if dataclasses.is_dataclass(value):  # a built section: its own __post_init__ checked it
      continue
    if dataclasses.is_dataclass(f.default):
      found += problems(type(f.default), value, _join(path, name), complete=complete)
    elif "each" in f.metadata:
      entries = _as_dict(value)
      if not entries:
        found.append(f"{_name(path, name)}={value!r}: expected {{name: {{field: value}}}} "
                     "with at least one entry")
        continue
      for key, entry in entries.items():
        if not dataclasses.is_dataclass(entry):
          found += problems(f.metadata["each"], entry, _join(_join(path, name), key))
    else:
      check = f.metadata.get("check")
      if check is not None and not check.test(value):
        found.append(f"{_name(path, name)}={value!r}: expected {check.expected}")
  return found


def _construct(cls, values: dict):
  kwargs = {}
  for f in dataclasses.fields(cls):
    if f.name not in values:
      continue
    value = values[f.name]
    if dataclasses.is_dataclass(value):
      pass
    elif dataclasses.is_dataclass(f.default):
      value = _construct(type(f.default), _as_dict(value))
    elif "each" in f.metadata:
      value = {key: entry if dataclasses.is_dataclass(entry) else
               _construct(f.metadata["each"], _as_dict(entry))
               for key, entry in _as_dict(value).items()}
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[f.name] = value
  return cls(**kwargs)


def problems(cls, values, path: str, *, complete: bool = False) -> list:
  """Every field of ``values`` (config section ``path``) that ``cls`` could not use.

  ``complete``: every field of ``cls`` and of its sections must be there (a run config read
  field by field), not only those without a default (``named`` entries: only those).
  Once every field passes its own check, ``cls`` is built, so the checks of several fields
  that its ``__post_init__`` runs (``check(self, path, *relations)``) are reported too.
  """
  values = _as_dict(values)
  if values is None:
    return [f"{_name(path)}: expected a section of fields"]
  found = _field_problems(cls, values, path, complete)
  if not found:
    try:
      _construct(cls, values)
    except SettingError as err:
      found = [str(err)]
  return found


def build(cls, values, path: str):
  """``cls(**values)`` after ``problems``; raises SettingError naming every bad value."""
  found = problems(cls, values, path)
  if found:
    raise SettingError("; ".join(found))
  return _construct(cls, _as_dict(values))


def check(instance, path: str, *relations: Callable[[Any, str], str | None]):
  """For ``__post_init__``: raises SettingError naming each field of ``instance`` its check
  refuses (as ``config.<path>.field``), else each complaint of ``relation(instance, path)``
  (checks of several fields; None when they agree)."""
  values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
  found = _field_problems(type(instance), values, path)
  if not found:
    found = [p for p in (relation(instance, path) for relation in relations) if p]
  if found:
    raise SettingError("; ".join(found))

"""Progress of long host jobs (embedding folders, scoring trial lists, building caches).

  with progress.Progress("embed", total=len(paths), unit="files") as bar:
    for batch in batches:
      ...
      bar.advance(len(batch))

On a terminal (stderr is a TTY) a rich progress bar with count, rate and ETA; otherwise a
plain stderr line every ``PLAIN_EVERY_S`` seconds and one at the end, so that logs of batch
jobs show it too. ``set_quiet(True)`` (the CLIs' ``--quiet``) silences both. rich comes with
flax, so the base install has it.
"""

import sys
import time

from rich import console as rich_console
from rich import progress as rich_progress
from rich import text as rich_text

PLAIN_EVERY_S = 10.0
_quiet = False


def set_quiet(quiet: bool):
  global _quiet
  _quiet = quiet


def _clock(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Rate(rich_progress.ProgressColumn):
  """Items per second (rich's own speed column counts bytes)."""

  def __init__(self, unit: str):
    super().__init__()
    self.unit = unit

  def render(self, task):
    return rich_text.Text(f"{task.speed or 0:.1f} {self.unit}/s")


class Progress:
  """``advance(n)`` after each piece of work, ``close()`` at the end (or use it in ``with``)."""

  def __init__(self, what: str, total: int | None, unit: str = "files", stream=None):
    self.what, self.total, self.unit = what, total, unit
    self.stream = stream or sys.stderr
    self.done, self.start = 0, time.monotonic()
    self._last_line = self.start
    self._bar = None
    if not _quiet and self.stream.isatty():
      # Results printed to stdout meanwhile stay on stdout (no redirection into the bar's).
      self._bar = rich_progress.Progress(
          rich_progress.TextColumn("{task.description}"), rich_progress.BarColumn(),
          rich_progress.MofNCompleteColumn(), _Rate(unit), rich_progress.TimeRemainingColumn(),
          console=rich_console.Console(file=self.stream), redirect_stdout=False,
          redirect_stderr=False)
      self._task = self._bar.add_task(what, total=total)
      self._bar.start()

  def __enter__(self):
    return self

  def __exit__(self, exc_type, *_):
    if exc_type is not None:
      self._last_line = None  # an error message follows, not a final count
    self.close()
    return False

  def advance(self, n: int = 1):
    self.done += n
    if self._bar is not None:
      self._bar.update(self._task, advance=n)
    elif not _quiet and time.monotonic() - self._last_line >= PLAIN_EVERY_S:
      self._line()

  def track(self, items):
    """Yields ``items``, advancing by one after each item's work (``continue`` included)."""
    for item in items:
      yield item
      self.advance()

  def close(self):
    if self._bar is not None:
      self._bar.stop()
      self._bar = None
    elif not _quiet and self.done and self._last_line is not None:  # the final count
      self._line()
    self._last_line = None  # closed: nothing more is printed

  def line(self) -> str:
    """``what: done/total unit, rate unit/s, ETA h:mm:ss`` (what the plain lines print)."""
    elapsed = max(time.monotonic() - self.start, 1e-9)
    rate = self.done / elapsed
    text = f"{self.what}: {self.done}" + (f"/{self.total}" if self.total else "")
    text += f" {self.unit}, {rate:.1f} {self.unit}/s"
    if self.total and rate > 0:
      text += f", ETA {_clock((self.total - self.done) / rate)}"
    return text

  def _line(self):
    self._last_line = time.monotonic()
    print(self.line(), file=self.stream, flush=True)

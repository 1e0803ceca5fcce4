"""ge2e_jax.progress: plain lines with count, rate and ETA off a terminal, a bar on one,
nothing with --quiet (set_quiet), no final count after an error."""

import io

import pytest

from ge2e_jax import progress


class Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class Terminal(io.StringIO):
  def isatty(self):
    return True


@pytest.fixture
def clock(monkeypatch):
  fake = Clock()
  monkeypatch.setattr(progress.time, "monotonic", fake)
  monkeypatch.setattr(progress, "PLAIN_EVERY_S", 10.0)
  yield fake
  progress.set_quiet(False)


def test_plain_lines_every_period_and_a_final_count(clock):
  stream = io.StringIO()
  with progress.Progress("embed", total=8, stream=stream) as bar:
    for _ in range(8):
      clock.now += 4.0  # 0.25 files/s
      bar.advance()
  # Lines when 10 s have passed since the last: after 12 s (3 files), 24 s (6), then the end.
  assert stream.getvalue().splitlines() == [
      "embed: 3/8 files, 0.2 files/s, ETA 0:00:20",
      "embed: 6/8 files, 0.2 files/s, ETA 0:00:08",
      "embed: 8/8 files, 0.2 files/s, ETA 0:00:00"]


def test_track_counts_items_whose_work_was_skipped(clock):
  stream = io.StringIO()
  with progress.Progress("verify", total=None, unit="trials", stream=stream) as bar:
    for item in bar.track(range(5)):
      clock.now += 1.0
      if item % 2:
        continue
  assert bar.done == 5
  assert stream.getvalue() == "verify: 5 trials, 1.0 trials/s\n"


def test_quiet_and_errors_print_no_count(clock):
  stream = io.StringIO()
  progress.set_quiet(True)
  with progress.Progress("embed", total=3, stream=Terminal()) as bar:
    clock.now += 60.0
    bar.advance(3)
  with progress.Progress("embed", total=3, stream=stream) as bar:
    clock.now += 60.0
    bar.advance(3)
  assert stream.getvalue() == ""
  progress.set_quiet(False)
  with pytest.raises(ValueError):
    with progress.Progress("embed", total=3, stream=stream) as bar:
      bar.advance()
      raise ValueError("bad file")
  assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar_with_count_and_rate(clock):
  stream = Terminal()
  with progress.Progress("embed", total=4, stream=stream) as bar:
    bar.advance(4)
  shown = stream.getvalue()
  assert "embed" in shown and "4/4" in shown and "files/s" in shown

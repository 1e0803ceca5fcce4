"""SIGTERM (TPU VM maintenance, Kubernetes eviction): finish the step, save it, exit 0.

  notice = preemption.Notice()        # before the loop
  if notice.reached(step): ...        # after each step: save this step and stop
  notice.close()                      # puts the previous handler back
  raise preemption.Preempted(message) # ends the process with status 0, the line printed

One process: the first SIGTERM sets a flag the loop reads after its current step; the
handler then puts the default one back, so a second SIGTERM ends the process at once
(orbax's saves are atomic: the last complete step stays usable). Several processes
(``jax.distributed``): JAX's preemption service (which handles SIGTERM there) agrees on one
step all processes save at (``multihost_utils.reached_preemption_sync_point``).
"""

import signal
import sys
import threading

import jax
from jax.experimental import multihost_utils


class Preempted(SystemExit):
  """Raised once the preempted step is saved: the process (a train run, or an ablation of
  several runs, all restartable) ends with status 0 after printing why."""

  def __init__(self, message: str):
    print(message, file=sys.stderr, flush=True)
    super().__init__(0)


class Notice:
  """Whether a preemption notice (SIGTERM) asks the loop to save and stop at this step."""

  def __init__(self):
    self.signal_name = None
    self._previous = None
    self._multi = jax.process_count() > 1
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process now

  def reached(self, step: int) -> bool:
    if self._multi:
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal_name = "preemption notice"
        return True
      return False
    return self.signal_name is not None

  def close(self):
    if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._on_sigterm:
      signal.signal(signal.SIGTERM, self._previous)

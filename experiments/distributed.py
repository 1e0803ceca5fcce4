"""Multi-process runs (``jax.distributed``) that stop instead of hanging when a process dies.

  distributed.initialize(address, num_processes, process_id, heartbeat_timeout_s=100)
  with distributed.stop_on_lost_process("train"):
    ...                                   # the training loop

A process that dies (killed, out of memory, its host gone) leaves the others waiting in a
collective. JAX's coordination service notices its missing heartbeats within
``heartbeat_timeout_s`` and ends every other process; a collective that fails first (its
peer's connection reset) raises in the loop. Either way the survivors stop within about
``heartbeat_timeout_s`` seconds. ``stop_on_lost_process`` turns the raised error into one
line and exits at once (``os._exit``: a normal exit would wait in JAX's shutdown barrier
for the lost process and then abort with pages of logs). The last complete checkpoint is
kept; started again, all processes resume from it.
"""

import contextlib
import os
import sys

import jax


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None, heartbeat_timeout_s: int):
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             heartbeat_timeout_seconds=heartbeat_timeout_s)


@contextlib.contextmanager
def stop_on_lost_process(name: str):
  """In a run of several processes, a failing collective ends this one with one line, exit 1."""
  try:
    yield
  except (jax.errors.JaxRuntimeError, ValueError) as err:
    if jax.process_count() == 1 or not _lost_peer(err):
      raise
    first = str(err).strip().splitlines()[0][:300]
    print(f"{name}: process {jax.process_index()} of {jax.process_count()} lost another "
          f"process ({first}); stopped: the last complete checkpoint is kept, restart every "
          "process with the same command", file=sys.stderr, flush=True)
    os._exit(1)


# What a collective or the coordination service says when a peer is gone (CPU: Gloo's TCP
# pairs; GPU: NCCL); an out-of-memory or a user error says none of it and is raised as is.
LOST_PEER_WORDS = ("Gloo", "NCCL", "Connection reset", "Connection refused", "heartbeat",
                   "UNAVAILABLE", "coordination service")


def _lost_peer(err: Exception) -> bool:
  return any(word in str(err) for word in LOST_PEER_WORDS)

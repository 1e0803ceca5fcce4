"""A 2-process jax.distributed CPU run where one process is killed: the other stops within
a bounded, configurable time with a clear error instead of hanging."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT_S = 5


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("killed, how", [
    (1, signal.SIGKILL), (0, signal.SIGKILL),  # a worker, the coordinator's process
    (1, signal.SIGSTOP)])  # frozen, connections open: only its missing heartbeats tell
def test_a_lost_process_stops_the_other_within_the_heartbeat_timeout(killed, how, tmp_path):
  port = free_port()
  logs = [open(tmp_path / f"{rank}.log", "w+") for rank in (0, 1)]
  procs = [subprocess.Popen([sys.executable, "-u", os.path.join(ROOT, "tests",
                                                               "lost_process_worker.py"),
                             str(rank), str(port), str(HEARTBEAT_S)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            stdout=logs[rank], stderr=subprocess.STDOUT)
           for rank in (0, 1)]
  try:
    deadline = time.time() + 120
    while "running" not in (tmp_path / f"{1 - killed}.log").read_text():
      assert time.time() < deadline and all(p.poll() is None for p in procs), "did not start"
      time.sleep(0.1)
    procs[killed].send_signal(how)
    start = time.time()
    survivor = procs[1 - killed]
    returncode = survivor.wait(timeout=HEARTBEAT_S * 6)
    took = time.time() - start
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  log = (tmp_path / f"{1 - killed}.log").read_text()
  assert returncode != 0 and took < HEARTBEAT_S * 3, (returncode, took, log[-2000:])
  clear = [line for line in log.splitlines()
           if line.startswith("worker: process") and "lost another process" in line
           or "Terminating process because the JAX distributed service detected" in line]
  assert clear, log[-3000:]

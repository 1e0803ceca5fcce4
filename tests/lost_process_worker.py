"""Subprocess side of tests/test_lost_process.py: one of 2 jax.distributed CPU processes
summing a value across processes in a loop (as a training step does), under
``experiments.distributed``.

  python tests/lost_process_worker.py RANK PORT HEARTBEAT_TIMEOUT_S
"""

import os
import sys
import time

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"

import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from experiments import distributed  # noqa: E402

rank, port, heartbeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
distributed.initialize(f"127.0.0.1:{port}", 2, rank, heartbeat)
with distributed.stop_on_lost_process("worker"):
  for step in range(1_000_000):
    total = multihost_utils.process_allgather(np.array([step], np.int32)).sum()
    assert total == 2 * step
    if step == 20:
      print("running", flush=True)
    time.sleep(0.01)

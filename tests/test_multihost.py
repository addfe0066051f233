"""Across processes: two JAX processes on localhost (``jax.distributed``, two
virtual CPU devices each). ``batch`` computes kernels block by block over all four
devices and each process ends with the whole kernel, equal in float64 to the
unbatched kernel it computes alone; ``train.fit`` over a mesh of all four devices
ends with the params of a single-device run. The workers run tests/multihost_worker.py.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("multihost_worker.py")
NUM_PROCESSES = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_share_kernel_blocks_and_data_parallel_training(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    port = _free_port()
    outputs = [tmp_path / f"process_{i}.json" for i in range(NUM_PROCESSES)]
    workers = [subprocess.Popen([sys.executable, str(WORKER), str(i), str(NUM_PROCESSES), str(port), str(out)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i, out in enumerate(outputs)]  # fmt: skip
    logs = []
    try:
        for worker in workers:
            logs.append(worker.communicate(timeout=300)[0])
    finally:
        for worker in workers:
            worker.kill()
    for worker, log in zip(workers, logs):
        assert worker.returncode == 0, log[-3000:]

    results = [json.loads(out.read_text()) for out in outputs]
    assert results[0].keys() == results[1].keys()
    for result in results:
        assert result["process_count"] == NUM_PROCESSES
        assert result["device_count"] == 2 * NUM_PROCESSES
        assert result["processes_in_block"] == [0, 1]
        cases = {k: v for k, v in result.items() if k.startswith(("Kernel", "ntk", "empirical"))}
        assert len(cases) == 25
        worst = max(cases, key=cases.get)
        assert cases[worst] < 1e-12, (worst, cases[worst])
        assert result["fit params sharded over"] == [0, 1]
        assert result["fit params"] < 1e-12 and result["fit eval_loss"] < 1e-12


def test_too_few_devices_for_the_processes_raises(monkeypatch):
    import jax
    import jax.numpy as jnp

    from jaxdl.kernels.batching import batch

    monkeypatch.setattr(jax, "process_count", lambda: 3)
    with pytest.raises(ValueError, match="leaves some of the 3 processes without a device"):
        batch(lambda a, b: a @ b.T, device_count=2)(jnp.ones((4, 2)))

"""Fault tolerance: torchrun restarts a 2-process job whose worker was SIGKILLed, and it resumes exactly.

One torchrun job (gloo on CPU) of 4 epochs with `checkpoint="run", resume=True` loses a worker three
times in a row: rank 1 in the middle of epoch 2, rank 0 in epoch 3, rank 1 in epoch 4. Each time
torchrun (`--max-restarts=3`) starts both workers again; they join a fresh process group, resume from
the last epoch's checkpoint and the job ends with the weights of one uninterrupted process with the
same global batch (which is what an uninterrupted 2-process run gives, tests/test_distributed_apps.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.ddp_restart_script import main as train
from tests.test_distributed import _free_port

SCRIPT = Path(__file__).with_name("ddp_restart_script.py")


@pytest.mark.slow
def test_a_killed_worker_is_restarted_by_torchrun_and_the_job_resumes_to_the_same_weights(tmp_path, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=3"]
    command += ["--master-addr=127.0.0.1", f"--master-port={_free_port()}", str(SCRIPT), str(tmp_path / "ddp")]
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parent.parent), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([*command, "--kills", "3"], env=env, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the torchrun job did not finish in {e.timeout} s (a restarted round hung?)")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert log.count("exitcode: -9") == 3, log[-4000:]  # three workers were killed ...
    for epoch in (1, 2, 3):  # ... and each restarted round resumed after the last finished epoch
        assert f"Resuming from {tmp_path / 'ddp' / 'models' / 'run.pth'}: epoch {epoch} of 4" in log, log[-4000:]
    assert "connectFullMesh" not in log and "not been initialized" not in log

    threads = torch.get_num_threads()
    try:
        train(str(tmp_path / "single"))  # one process, never interrupted, batch 16 = 2 x 8
    finally:
        torch.set_num_threads(threads)
    resumed = torch.load(tmp_path / "ddp" / "final.pt", weights_only=True)
    for k, w in torch.load(tmp_path / "single" / "final.pt", weights_only=True).items():
        torch.testing.assert_close(resumed[k], w, rtol=1e-4, atol=1e-5, msg=k)

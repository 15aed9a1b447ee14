"""Several processes, one run (funcnn.train.distributed): real processes on 127.0.0.1, the same parameters as one
process on the same global batches, global BatchNorm statistics, a killed process, mismatched configurations."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

import funcnn as fn
from funcnn.train import distributed

HERE = Path(__file__).parent
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def _own_env():
    """The environment for the multi-process runs, without the test session's shared compilation cache: on jax
    0.12.1 a two-process run that read it stalled before its first epoch (twice in CI's newest leg, never on 0.10.2
    or without the cache); each run compiles for itself, as before the cache."""
    return {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}


def _funcnn(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "funcnn", *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(_own_env(), **QUIET, **(env or {})))


def _close(a, b, rtol=1e-5):
    """Equal within float32 rounding: XLA's CPU reductions and dots round differently on a share of the batch than
    on all of it (measured: up to 3e-6 of the largest entry after 5 to 45 steps); a missing all-reduce is off by far
    more (half the batch's statistics)."""
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert np.max(np.abs(x - y)) <= rtol * max(np.max(np.abs(y)), 1e-12), np.max(np.abs(x - y))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """LeNet-5 on digits, one epoch, in one process: the reference for the multi-process runs."""
    out = tmp_path_factory.mktemp("one") / "run"
    result = _funcnn("train", "--epochs", "1", "--out", str(out), "--no-plots", "--no-progress")
    assert result.returncode == 0, result.stderr
    return fn.load(out / "params.npz")


@pytest.mark.parametrize("local_devices", [None, 2])
def test_two_processes_give_the_one_process_parameters(tmp_path, one_process, local_devices):
    """2 processes x 1 device, and 2 x 2 simulated devices: every process reads only its rows of each global batch,
    and the parameters equal the one-process run's within float32 rounding: the all-reduce sums in another order,
    and each device's matmuls run on its share of the batch, which XLA's CPU dot emitter blocks differently (after
    one epoch of Adam the largest difference measured 2e-6 of the largest parameter with 2 x 2 devices)."""
    out = tmp_path / "two"
    extra = ["--local-devices", str(local_devices)] if local_devices else []
    result = _funcnn("train", "--processes", "2", *extra, "--epochs", "1", "--out", str(out), "--no-plots",
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    _close(fn.load(out / "params.npz")["params"], one_process["params"])
    config = json.loads((out / "config.json").read_text())
    assert config["processes"] == 2 and config["devices"] == 2 * (local_devices or 1)
    assert result.stdout.count("test accuracy") == 1  # process 0 speaks for the run


def test_batchnorm_statistics_are_global(tmp_path):
    """A BatchNorm network trained by `fit` in 2 processes equals the one-process fit: the batch statistics (and
    the running averages) are the global batch's, not each process's half."""
    out = tmp_path / "bn.npz"
    launched = subprocess.run([sys.executable, "-m", "funcnn.launch", "-n", "2", "--", sys.executable,
                               str(HERE / "distributed_worker.py"), str(out)], capture_output=True, text=True,
                              timeout=600, env=dict(_own_env(), **QUIET))
    assert launched.returncode == 0, launched.stderr
    alone = subprocess.run([sys.executable, str(HERE / "distributed_worker.py"), str(tmp_path / "one.npz"),
                            "--single"], capture_output=True, text=True, timeout=600, env=dict(_own_env(), **QUIET))
    assert alone.returncode == 0, alone.stderr
    two, one = fn.load(out), fn.load(tmp_path / "one.npz")
    assert int(two["processes"]) == 2 and int(one["processes"]) == 1
    _close(two["state"], one["state"])
    _close(two["params"], one["params"])


def _children(pid):
    """The pids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_a_killed_process_stops_the_run_and_resume_finishes_it(tmp_path):
    out = tmp_path / "k"
    args = ["train", "--processes", "2", "--epochs", "6", "--checkpoint-every", "10", "--out", str(out),
            "--no-plots", "--no-progress"]
    launcher = subprocess.Popen([sys.executable, "-m", "funcnn", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(_own_env(), **QUIET))
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "metrics.jsonl").exists()
                                          and len((out / "metrics.jsonl").read_text().splitlines()) >= 2):
        time.sleep(0.2)
    workers = _children(launcher.pid)
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)  # process 1 (started second)
    killed_at = time.time()
    _, err = launcher.communicate(timeout=120)
    assert time.time() - killed_at < 60, "the others did not stop in time"
    assert launcher.returncode != 0
    assert "process 1 of 2 was killed by SIGKILL; stopped the others" in err
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and
                Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]  # no process left behind
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert 2 <= done < 6
    assert zipfile.ZipFile(out / "checkpoint.npz").testzip() is None  # the last checkpoint is complete
    again = _funcnn(*args, "--resume")
    assert again.returncode == 0, again.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_processes_with_different_settings_are_refused(tmp_path):
    """Two processes started by hand (as on a cluster) with different batch sizes: both stop before training."""
    port = distributed.free_port()
    procs = []
    for rank, batch in enumerate(("32", "64")):
        env = dict(_own_env(), **QUIET, FUNCNN_COORDINATOR=f"127.0.0.1:{port}", FUNCNN_NUM_PROCESSES="2",
                   FUNCNN_PROCESS_ID=str(rank))
        procs.append(subprocess.Popen([sys.executable, "-m", "funcnn", "train", "--batch-size", batch, "--out",
                                       str(tmp_path / "m"), "--no-progress", "--no-plots"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        assert "differs from process 0's; every process must run the same command" in err
    assert not (tmp_path / "m" / "metrics.jsonl").exists()


def test_launcher_and_settings_errors(capsys):
    assert distributed.initialize() is False  # one process: nothing to join
    with pytest.raises(distributed.DistributedError, match="go together"):
        distributed.initialize("127.0.0.1:1234")
    with pytest.raises(distributed.DistributedError, match="need 0 <= process id < number of processes"):
        distributed.initialize("127.0.0.1:1234", 2, 5)
    with pytest.raises(SystemExit):
        distributed.main(["-n", "2"])  # no command to run
    with pytest.raises(distributed.DistributedError, match="--processes must be >= 1"):
        distributed.launch(["true"], 0)
    assert distributed.launch([sys.executable, "-c", "pass"], 2) == 0
    code = distributed.launch([sys.executable, "-c", "import os, sys; sys.exit(3 if os.environ['FUNCNN_PROCESS_ID'] "
                                                     "== '1' else 0)"], 2, log=lambda line: print(line))
    assert code == 3 and "process 1 of 2 exited with status 3" in capsys.readouterr().out


def test_a_collective_that_lost_its_peer_is_peer_lost(monkeypatch):
    """`peers_watched` names a lost peer (PeerLost, a DistributedError, the original error as its cause) only in a
    multi-process run and only for an error of a collective's connection; everything else passes unchanged."""
    lost = RuntimeError("Gloo error: Connection closed by peer [127.0.0.1]:4567")
    with pytest.raises(RuntimeError) as one_process:  # one process: nothing is a lost peer
        with distributed.peers_watched():
            raise lost
    assert one_process.value is lost
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    with pytest.raises(distributed.PeerLost, match=r"process 1: lost the connection .*\(RuntimeError\).*--resume") \
            as two_processes:
        with distributed.peers_watched():
            raise lost
    assert isinstance(two_processes.value, distributed.DistributedError) and two_processes.value.__cause__ is lost
    for other in (ValueError("shapes (3,) and (4,) differ"), distributed.DistributedError("refused")):
        with pytest.raises(type(other)) as passed:
            with distributed.peers_watched():
                raise other
        assert passed.value is other

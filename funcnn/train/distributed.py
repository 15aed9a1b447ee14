"""Several processes, one training run: JAX's distributed runtime, a launcher for one machine, a cluster's hooks.

On one machine (every process on 127.0.0.1, the coordinator on a free port):

    funcnn train --processes 2                      # 2 processes, 1 CPU device each
    funcnn train --processes 2 --local-devices 2    # 2 processes x 2 simulated CPU devices
    python -m funcnn.launch -n 2 -- funcnn train    # the same launcher, for any funcnn command

On a cluster, start one `funcnn train` per process; each calls `initialize()`, which reads the coordinator address,
the number of processes and this process's id from the arguments (`--coordinator HOST:PORT --num-processes N
--process-id I`), from the FUNCNN_COORDINATOR / FUNCNN_NUM_PROCESSES / FUNCNN_PROCESS_ID variables the launcher
sets, or from the cluster's environment (SLURM, Open MPI: JAX detects them). A SLURM job:

    #SBATCH --ntasks=4
    srun funcnn train --model resnet20 --dataset cifar10 --data-dir /data/cifar --out /shared/runs/r20

Each process then reads only its slice of every global batch (the global order is the one-process order for the same
seed), `fit` runs the data-parallel step over a Mesh of every device of every process (gradients and BatchNorm
statistics are global), process 0 alone writes metrics, checkpoints and plots, and every process can resume from
them. If a process dies, the others fail their next collective at once, or after `heartbeat_timeout` seconds when
they are not inside one; the launcher stops the rest and says which one died.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import NoReturn, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from ..primitives.conv.paths import onednn

ENV = ("FUNCNN_COORDINATOR", "FUNCNN_NUM_PROCESSES", "FUNCNN_PROCESS_ID")
HEARTBEAT_TIMEOUT = 20
INITIALIZATION_TIMEOUT = 120


class DistributedError(RuntimeError):
    """A multi-process run cannot start or has lost a process; the message says which and what is kept."""


class PeerLost(DistributedError):
    """Another process of the run is gone: a collective failed on its connection. The last complete checkpoint is
    kept; end the process with `exit_now` (JAX's shutdown barrier would wait for the lost process)."""


# what the error of a collective says when its peer is gone (XLA's CPU collectives run on gloo; jax raises its
# runtime's error type, which names no lost peer by type)
_LOST_PEER_WORDS = ("gloo", "connection")


@contextlib.contextmanager
def peers_watched():
    """Raise PeerLost, naming this process, where a collective inside the block failed because another process of
    the run is gone; any other error, and every error of a one-process run, passes unchanged."""
    try:
        yield
    except DistributedError:
        raise
    except Exception as err:
        if jax.process_count() > 1 and any(word in str(err).lower() for word in _LOST_PEER_WORDS):
            raise PeerLost(f"process {jax.process_index()}: lost the connection to another process of the run "
                           f"({type(err).__name__}); the last complete checkpoint is kept: resume with --resume"
                           ) from err
        raise


def exit_now(code: int) -> NoReturn:
    """End this process at once with `code`, without JAX's shutdown barrier (after PeerLost it would wait for the
    lost process)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def settings_from_environment():
    """(coordinator, num_processes, process_id) from the FUNCNN_* variables, or None when they are not set."""
    values = [os.environ.get(name) for name in ENV]
    if not any(values):
        return None
    if not all(values):
        raise DistributedError(f"set all of {', '.join(ENV)} or none of them (got "
                               + ", ".join(f"{n}={v!r}" for n, v in zip(ENV, values)) + ")")
    try:
        return values[0], int(values[1]), int(values[2])
    except ValueError:
        raise DistributedError(f"FUNCNN_NUM_PROCESSES and FUNCNN_PROCESS_ID must be integers, got {values[1]!r}, "
                               f"{values[2]!r}") from None


def in_cluster() -> bool:
    """Whether the environment is a multi-task SLURM or Open MPI job (JAX reads the rest of its settings)."""
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None, *,
               heartbeat_timeout: int = HEARTBEAT_TIMEOUT,
               initialization_timeout: int = INITIALIZATION_TIMEOUT) -> bool:
    """Join a multi-process run before JAX computes anything: `jax.distributed.initialize` with these settings,
    or those of the environment (see the module docstring). On CPU the collectives are gloo's. Returns False (and
    does nothing) when neither the arguments nor the environment describe more than one process."""
    given = (coordinator, num_processes, process_id)
    if any(v is not None for v in given) and not all(v is not None for v in given):
        raise DistributedError("--coordinator, --num-processes and --process-id go together: pass all three")
    if coordinator is None:
        from_env = settings_from_environment()
        if from_env is None and not in_cluster():
            return False
        coordinator, num_processes, process_id = from_env or (None, None, None)
    if num_processes is not None:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise DistributedError(f"need 0 <= process id < number of processes, got {process_id} of "
                                   f"{num_processes}")
        if num_processes == 1:
            return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    local = coordinator is not None and coordinator.rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")
    try:  # a coordinator on this machine listens on the loopback address only (JAX's default is every interface)
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   initialization_timeout=initialization_timeout,
                                   heartbeat_timeout_seconds=heartbeat_timeout,
                                   coordinator_bind_address=coordinator if local else None)
    except Exception as err:  # noqa: BLE001 - the coordinator unreachable, a timeout, JAX already started
        raise DistributedError(f"could not join the run at {coordinator} as process {process_id} of "
                               f"{num_processes}: {err}") from err
    return True


def process_index() -> int:
    return jax.process_index()


def is_main() -> bool:
    """Whether this process writes the run's files (process 0, or the only one)."""
    return process_index() == 0


def agree(fingerprint: str, what: str = "configuration") -> None:
    """Refuse to start unless every process holds the same `fingerprint` (a string describing its settings)."""
    if jax.process_count() == 1:
        return
    digest = np.frombuffer(hashlib.sha256(fingerprint.encode()).digest()[:16], np.uint32).copy()
    everyone = np.asarray(multihost_utils.process_allgather(digest))
    differing = [p for p in range(len(everyone)) if not np.array_equal(everyone[p], everyone[0])]
    if differing:
        raise DistributedError(f"process {jax.process_index()}: the {what} of process(es) {differing} differs from "
                               f"process 0's; every process must run the same command (this one: {fingerprint})")


def broadcast_text(text: str, size: int = 4096) -> str:
    """Process 0's `text` in every process (a run directory chosen once, say)."""
    if jax.process_count() == 1:
        return text
    data = text.encode()
    if len(data) > size:
        raise DistributedError(f"broadcast_text: {len(data)} bytes, more than {size}")
    buffer = np.zeros(size + 4, np.uint8)
    buffer[:4] = np.frombuffer(np.uint32(len(data)).tobytes(), np.uint8)
    buffer[4:4 + len(data)] = np.frombuffer(data, np.uint8)
    received = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    length = int(np.frombuffer(received[:4].tobytes(), np.uint32)[0])
    return received[4:4 + length].tobytes().decode()


# ----------------------------------------------------------------------------------------------------------------
# the launcher: N processes on this machine


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the coordinator binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def launch(command: Sequence[str], processes: int, *, local_devices: int | None = None, port: int | None = None,
           grace: float = 10.0, log=print) -> int:
    """Run `command` (an argv list) as `processes` processes on this machine, joined as one run through a
    coordinator on 127.0.0.1 (environment FUNCNN_COORDINATOR, FUNCNN_NUM_PROCESSES, FUNCNN_PROCESS_ID).

    Returns 0 when every process succeeded. When one fails or dies, the others are stopped (SIGTERM, then SIGKILL
    after `grace` seconds) and its exit status is returned (1 for a signal); nothing that a process finished
    writing is touched. `local_devices` simulates that many CPU devices per process (XLA_FLAGS). Each process's
    oneDNN convolutions use its share of this machine's cores (FUNCNN_ONEDNN_THREADS = cores // processes, unless
    set), so that N processes do not run N times as many threads as there are cores."""
    if processes < 1:
        raise DistributedError(f"--processes must be >= 1, got {processes}")
    coordinator = f"127.0.0.1:{port or free_port()}"
    share = str(max(1, len(os.sched_getaffinity(0)) // processes))
    children = []
    for rank in range(processes):
        env = dict(os.environ, FUNCNN_COORDINATOR=coordinator, FUNCNN_NUM_PROCESSES=str(processes),
                   FUNCNN_PROCESS_ID=str(rank), PYTHONUNBUFFERED="1")
        env.setdefault(onednn.THREADS_VARIABLE, share)
        if local_devices:
            flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
            env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={local_devices}"])
        children.append(subprocess.Popen(list(command), env=env))
    failed = None
    try:
        while True:
            codes = [child.poll() for child in children]
            bad = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if bad:  # a process killed by a signal is the cause; the others' errors (a lost peer) its effect
                failed = min(bad, key=lambda item: (item[1] >= 0, item[0]))
                break
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.1)
    except KeyboardInterrupt:
        failed = (None, 130)
    finally:
        running = [child for child in children if child.poll() is None]
        for child in running:
            child.terminate()
        deadline = time.time() + grace
        for child in running:
            try:
                child.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    rank, code = failed
    if rank is None:
        log("funcnn: interrupted; stopped every process (the last complete checkpoint is kept; resume with --resume)")
        return 130
    log(f"funcnn: error: process {rank} of {processes} {_describe(code)}; stopped the others. Whatever the run "
        "had written completely (its last checkpoint) is kept: run the same command with --resume to continue")
    return code if code > 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m funcnn.launch -n N [--local-devices K] -- COMMAND ...`."""
    parser = argparse.ArgumentParser(prog="python -m funcnn.launch",
                                     description="Run a command as N processes of one distributed run on this "
                                                 "machine (coordinator on 127.0.0.1).")
    parser.add_argument("-n", "--processes", type=int, required=True, help="number of processes")
    parser.add_argument("--local-devices", type=int, default=None, help="simulated CPU devices per process")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --, e.g. -- funcnn train")
    if command[0] == "funcnn":
        command = [sys.executable, "-m", "funcnn", *command[1:]]
    try:
        return launch(command, args.processes, local_devices=args.local_devices)
    except DistributedError as err:
        print(f"funcnn.launch: error: {err}", file=sys.stderr)
        return 2


__all__ = ["DistributedError", "PeerLost", "initialize", "is_main", "process_index", "agree", "broadcast_text",
           "peers_watched", "exit_now", "launch", "free_port", "settings_from_environment", "main"]

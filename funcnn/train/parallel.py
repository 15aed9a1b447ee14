"""Data parallelism over devices (and hosts) with jax.sharding: no home-made communication.

    step = make_data_parallel_train_step(model.apply, optimizer)        # a Mesh over every device
    batch = shard_batch((x, y), step.mesh)                               # split the batch across devices
    params, state, opt_state, metrics = step(params, state, opt_state, batch, rng)

Parameters, model state and optimiser state are replicated; the batch is split along its first axis over the mesh
axis "data"; XLA inserts the all-reduce of the gradients. BatchNorm's batch statistics are means over a sharded
array, which XLA computes over the global batch, so the step equals the single-device step on the whole batch.

Several hosts: call `jax.distributed.initialize()` (coordinator address, number of processes and process id from the
arguments or the cluster's environment) in every process before anything else; `jax.devices()` then lists the
devices of all hosts, the same Mesh spans them, and each process passes its own slice of the global batch to
`shard_batch(..., local=True)` (jax.make_array_from_process_local_data).
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..primitives.conv import compiler_options
from .steps import classification_loss, make_train_step


def data_mesh(devices=None, axis: str = "data") -> Mesh:
    """A one-axis Mesh over `devices` (default: every device of every process)."""
    return Mesh(np.array(jax.devices() if devices is None else devices), (axis,))


def shard_batch(batch, mesh: Mesh, *, axis: str = "data", local: bool = False):
    """Place a batch (a pytree of arrays with a leading batch axis) split across the mesh's data axis.

    local=True: the arrays are this process's slice of the global batch (multi-host training)."""
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    devices = mesh.shape[axis]

    def place(a):
        size = a.shape[0] * (jax.process_count() if local else 1)
        if size % devices:
            raise ValueError(f"shard_batch: the batch size {size} must be divisible by the {devices} devices of "
                             f"mesh axis {axis!r}")
        if local:
            return jax.make_array_from_process_local_data(sharding, np.asarray(a))
        return jax.device_put(a, sharding)

    return jax.tree_util.tree_map(place, batch)


def replicate(tree, mesh: Mesh):
    """Every leaf (host or single-device data, the same in every process) as an array replicated on every device of
    the mesh, across processes too."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def place(a):
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree_util.tree_map(place, tree)


def local_copy(tree):
    """This process's copy of replicated arrays (the first addressable shard): host-readable in any process."""
    return jax.tree_util.tree_map(lambda a: a.addressable_data(0) if isinstance(a, jax.Array) else a, tree)


class DataParallelStep:
    """A compiled data-parallel train step; call it like make_train_step's step. `.mesh` is its Mesh."""

    def __init__(self, step, mesh, axis="data"):
        self._step, self.mesh, self.axis = step, mesh, axis

    def __call__(self, params, state, opt_state, batch, rng):
        return self._step(params, state, opt_state, batch, rng)

    def lower(self, params, state, opt_state, batch, rng):
        """Lower for these arguments (ShapeDtypeStructs welcome; the batch's get the split sharding)."""
        split = NamedSharding(self.mesh, PartitionSpec(self.axis))
        batch = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=split), batch)
        return self._step.lower(params, state, opt_state, batch, rng)


def make_data_parallel_train_step(apply: Callable, optimizer, loss: Callable = classification_loss, *,
                                  mesh: Mesh | None = None, axis: str = "data", augment=None,
                                  cpu_engine: str | None = None) -> DataParallelStep:
    """make_train_step's step, compiled for a Mesh: replicated parameters and states, batch split over `axis`;
    cpu_engine as in `make_train_step`."""
    mesh = data_mesh(axis=axis) if mesh is None else mesh
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec(axis))
    step = make_train_step(apply, optimizer, loss, augment=augment, jit=False, cpu_engine=cpu_engine)
    compiled = jax.jit(step, in_shardings=(replicated, replicated, replicated, split, replicated),
                       out_shardings=replicated, donate_argnums=(0, 1, 2),
                       compiler_options=compiler_options(cpu_engine, mesh.devices.flat[0].platform))
    return DataParallelStep(compiled, mesh, axis)

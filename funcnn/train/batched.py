"""Many models at once: R independent replicas in one compiled step, and per-example gradients.

Replicas are stacked along a leading axis of every parameter, state and optimiser-state array, and the ordinary
train step is mapped over that axis: `vmap`ped on accelerators (one batched kernel per operation), and on the CPU
run replica after replica inside the one compiled step (`lax.map`), because XLA's CPU backend runs several
operations of the vmapped step slower than the separate ones (docs/scale.md: the ratios `benchmarks/replicas.py`
measures). Hyperparameters injected into the optimiser state (the learning rate and
weight decay of funcnn.train.recipes) become per-replica values, so a sweep is one compiled step:

    params, state = init_replicas(model.init, (1, 32, 32, 1), jax.random.split(key, 8))
    opt_state = init_replica_optimizer(train.adam(), params, learning_rate=[1e-4, 3e-4, 1e-3, ...])
    step = make_replica_train_step(model.apply, train.adam())
    params, state, opt_state, metrics = step(params, state, opt_state, batch, keys)   # metrics per replica

Replica r computes exactly what a separate run with its seed and hyperparameters would (tested).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..data.batching import batch_indices, batches, num_batches
from ..io import save
from ..primitives.conv import compiler_options, loop_body
from .fit import check_examples
from .loop import Loop, Progress, train as train_loop
from .settings import FitSettings, settings_for
from .steps import classification_loss, make_eval_step, make_train_step


def init_replicas(init: Callable, input_shape, keys):
    """(params, state) of len(keys) models, stacked on a leading replica axis; replica r is init(keys[r], ...)."""
    keys = jnp.asarray(keys)
    raw = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if keys.ndim != (1 if raw else 2) or keys.shape[0] < 1:
        raise ValueError(f"init_replicas: keys must be a stack of PRNG keys, one per replica "
                         f"(jax.random.split(key, R)), got an array of shape {keys.shape} and dtype {keys.dtype}")

    def one(key):
        _, params, state = init(key, input_shape)
        return params, state

    return jax.vmap(one)(keys)


def init_replica_optimizer(optimizer, params, **hyperparams):
    """Stacked optimiser states for stacked params; each keyword (e.g. learning_rate=[...]) sets one injected
    hyperparameter per replica (a scalar is shared by all)."""
    opt_state = jax.vmap(optimizer.init)(params)
    replicas = jax.tree_util.tree_leaves(params)[0].shape[0]
    for name, values in hyperparams.items():
        if not hasattr(opt_state, "hyperparams") or name not in opt_state.hyperparams:
            raise ValueError(f"init_replica_optimizer: the optimiser has no injected hyperparameter {name!r}; "
                             "build it with funcnn.train.recipes or optax.inject_hyperparams")
        values = jnp.broadcast_to(jnp.asarray(values, opt_state.hyperparams[name].dtype), (replicas,))
        opt_state.hyperparams[name] = values
    return opt_state


STRATEGIES = ("auto", "vmap", "map")


def replica_strategy(strategy: str = "auto", backend: str | None = None) -> str:
    """The strategy `auto` resolves to: "map" on the CPU, "vmap" elsewhere (ValueError for an unknown name)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"replica strategy: unknown {strategy!r}; known: {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    return "map" if (backend or jax.default_backend()) == "cpu" else "vmap"


def map_replicas(fn: Callable, in_axes, strategy: str = "auto") -> Callable:
    """fn mapped over the leading (replica) axis of the arguments whose in_axes entry is 0 (None: shared).

    "vmap" batches every operation over the replicas; "map" runs fn once per replica in a loop inside the compiled
    program (`lax.map`), each iteration the very computation of a single run. Both give the same values up to float
    rounding; which is faster depends on the backend (see the module docstring)."""
    how = replica_strategy(strategy)
    if how == "vmap":
        return jax.vmap(fn, in_axes=in_axes)

    def mapped(*args):
        stacked = [a for a, axis in zip(args, in_axes) if axis is not None]

        def one(sliced):
            it = iter(sliced)
            return fn(*(next(it) if axis is not None else a for a, axis in zip(args, in_axes)))

        with loop_body():  # the conv rules traced here run inside the loop: no batch chunks
            return jax.lax.map(one, stacked)

    return mapped


def make_replica_train_step(apply: Callable, optimizer, loss: Callable = classification_loss, *,
                            shared_batch: bool = True, augment=None, strategy: str = "auto",
                            cpu_engine: str | None = None):
    """A jit-compiled step over stacked replicas: (params, state, opt_state, batch, rngs) -> same, metrics per
    replica. shared_batch: every replica sees the same batch (a sweep); False: batch arrays carry a replica axis.
    strategy: "vmap", "map" or "auto" (map on the CPU, vmap elsewhere; see `map_replicas`). cpu_engine: as in
    `make_train_step`."""
    step = make_train_step(apply, optimizer, loss, augment=augment, jit=False, cpu_engine=cpu_engine)
    mapped = map_replicas(step, (0, 0, 0, None if shared_batch else 0, 0), strategy)
    return jax.jit(mapped, donate_argnums=(0, 1, 2), compiler_options=compiler_options(cpu_engine))


def per_example_grads(loss: Callable, params, batch):
    """The gradient of `loss(params, batch)` for each example alone, stacked on a leading axis.

    `loss` is an ordinary batch loss returning a scalar; each example is passed to it as a batch of one, so
    models written for batches work unchanged. Computed with vmap(grad) through funcnn's hand-written rules: equal
    to looping over the examples (the building block of per-example clipping in DP-SGD).
    """

    lengths = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree_util.tree_leaves(batch)}
    if len(lengths) != 1 or None in lengths:
        shapes = jax.tree_util.tree_map(np.shape, batch)
        raise ValueError(f"per_example_grads: every array of the batch needs the same leading (example) axis, got "
                         f"shapes {shapes}")

    def one(example):
        batched = jax.tree_util.tree_map(lambda a: a[None], example)
        return jax.grad(loss)(params, batched)

    return jax.vmap(one)(batch)


@dataclasses.dataclass
class ReplicaResult:
    params: object        # stacked: leading axis = replica
    state: object
    opt_state: object
    histories: list       # one list of per-epoch rows per replica
    seconds: float        # training time (compilation included)


def replica(tree, r: int):
    """Replica r's slice of a stacked tree."""
    return jax.tree.map(lambda a: a[r], tree)


ONE_MODEL = ("resume", "overwrite", "checkpoint_every", "early_stopping", "plateau_patience", "max_steps", "drop_last")
_DEFAULTS = FitSettings()


def fit_replicas(apply: Callable, params, state, optimizer, train, val=None, *, keys, hyperparams=None,
                 loss: Callable = classification_loss, augment=None, strategy: str = "auto",
                 settings: FitSettings | None = None, **options) -> ReplicaResult:
    """Train R stacked replicas (from `init_replicas`) in one compiled step per batch.

    Replica r does what `fit(apply, replica(params, r), replica(state, r), optimizer with its hyperparameters,
    train, val, key=keys[r], epochs=epochs, batch_size=batch_size)` does: the same data order (its own, from
    keys[r]), the same step keys, the same updates, up to float rounding (tested). hyperparams: injected
    hyperparameters per replica, e.g. {"learning_rate": [1e-3, 3e-3]} (see `init_replica_optimizer`).

    out_dir: each replica writes replica_R/metrics.jsonl (one row per epoch) and replica_R/params.npz (its
    parameters and state, replaced atomically after every epoch); summary.json lists every replica's
    hyperparameters and final metrics. strategy: how the replicas share the compiled step (`map_replicas`).

    settings: a `FitSettings`, and keyword options replacing its fields, as in `fit`; fit_replicas reads epochs,
    batch_size, eval_batch_size, out_dir and progress, and refuses the settings that train one model (resume,
    overwrite, checkpoint_every, early_stopping, plateau_patience, max_steps, drop_last=False) when they differ
    from their defaults.
    """
    settings = settings_for("fit_replicas", settings, options)
    one_model = [name for name in ONE_MODEL if getattr(settings, name) != getattr(_DEFAULTS, name)]
    if one_model:
        raise ValueError(f"fit_replicas: {', '.join(one_model)} train one model (funcnn.train.fit); fit_replicas "
                         "takes epochs, batch_size, eval_batch_size, out_dir and progress")
    epochs, batch_size, eval_batch_size = settings.epochs, settings.batch_size, settings.eval_batch_size
    out_dir, progress = settings.out_dir, settings.progress
    keys = jnp.asarray(keys)
    replicas = len(keys)
    leading = {a.shape[0] for a in jax.tree.leaves((params, state))}
    if leading != {replicas}:
        raise ValueError(f"fit_replicas: {replicas} keys but stacked params / state with leading axes {leading}")
    first = replica(params, 0), replica(state, 0)  # what fit checks the data against, for one replica
    n = check_examples(apply, *first, train, "train", loss, where="fit_replicas")
    if val is not None:
        check_examples(apply, *first, val, "val", loss, where="fit_replicas")
    train, val = tuple(train), None if val is None else tuple(val)  # a Split or list becomes a plain pair
    if n < batch_size:
        raise ValueError(f"fit_replicas: {n} training examples, fewer than batch_size={batch_size}")
    hyperparams = {k: np.broadcast_to(np.asarray(v, np.float64), (replicas,)) for k, v in (hyperparams or {}).items()}
    params, state = jax.tree.map(jnp.copy, (params, state))
    trees = (params, state, init_replica_optimizer(optimizer, params, **hyperparams))
    out = Path(out_dir) if out_dir is not None else None
    progress_bar, progress = progress, Progress(models=replicas)
    loop = Loop(epochs=epochs, per_epoch=num_batches(n, batch_size, drop_last=True),
                batches=_replica_batches(train, keys, batch_size),
                step=_replica_step(apply, optimizer, loss, augment, strategy, keys),
                validate=None if val is None else _replica_validation(apply, loss, val, eval_batch_size, strategy),
                record=_ReplicaFiles(out, replicas).record if out is not None else Loop.record,
                kept=lambda: "each replica's params.npz holds its last finished epoch" if out else
                "no checkpoint was written", show=progress_bar, label=f" ({replicas} replicas)")
    started = time.perf_counter()
    trees = train_loop(loop, trees, progress)
    seconds = time.perf_counter() - started
    if out is not None:
        summary = [{"replica": r, **{k: float(v[r]) for k, v in hyperparams.items()},
                    **(progress.history[r][-1] if progress.history[r] else {})} for r in range(replicas)]
        (out / "summary.json").write_text(json.dumps({"seconds": seconds, "replicas": summary}, indent=2) + "\n")
    return ReplicaResult(*trees, progress.history, seconds)


def _replica_batches(train, keys, batch_size: int):
    """(epoch, first batch) -> that epoch's batches, replica r's rows in its own order (what fit with keys[r]
    would draw), stacked on a leading replica axis."""
    x, y = train
    data_keys = [jax.random.fold_in(k, 0) for k in keys]

    def epoch(e, start):
        orders = [batch_indices(len(x), batch_size, key=jax.random.fold_in(k, e), drop_last=True, start=start)
                  for k in data_keys]
        for rows in zip(*orders):
            index = np.stack(rows)
            yield jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[index]), (x, y))

    return epoch


def _replica_step(apply, optimizer, loss, augment, strategy, keys):
    """(trees, batch, global step) -> (trees, per-replica metrics on the host)."""
    step_fn = make_replica_train_step(apply, optimizer, loss, shared_batch=False, augment=augment, strategy=strategy)
    step_keys = [jax.random.fold_in(k, 1) for k in keys]

    def step(trees, batch, t):
        rngs = jnp.stack([jax.random.fold_in(k, t) for k in step_keys])
        *trees, metrics = step_fn(*trees, batch, rngs)
        return tuple(trees), {k: np.asarray(v, np.float64) for k, v in metrics.items()}

    return step


def _replica_validation(apply, loss, val, eval_batch_size: int, strategy):
    eval_fn = jax.jit(map_replicas(make_eval_step(apply, loss, jit=False), (0, 0, None), strategy),
                      compiler_options=compiler_options("eigen"))

    def validate(trees):
        sums: dict = {}
        for batch in batches(val[0], val[1], eval_batch_size):
            for k, v in eval_fn(trees[0], trees[1], batch).items():
                sums[k] = sums.get(k, 0.0) + np.asarray(v, np.float64)
        result = {"loss": sums["loss_sum"] / sums["count"]}
        if "correct" in sums:
            result["accuracy"] = sums["correct"] / sums["count"]
        return result

    return validate


@dataclasses.dataclass(frozen=True)
class _ReplicaFiles:
    """replica_R/metrics.jsonl (a row per epoch) and replica_R/params.npz (replaced after every epoch)."""
    out: Path
    replicas: int

    def __post_init__(self):
        for r in range(self.replicas):  # a new run: the folders' old rows go
            folder = self.out / f"replica_{r}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.jsonl").write_text("")

    def record(self, trees, rows, progress) -> None:
        for r, row in enumerate(rows):
            folder = self.out / f"replica_{r}"
            with open(folder / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            save(folder / "params.npz", {"params": replica(trees[0], r), "state": replica(trees[1], r)})

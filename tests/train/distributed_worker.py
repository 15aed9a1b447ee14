"""A process of a multi-process `fit` (tests/train/test_distributed.py starts it through funcnn.launch): a small
BatchNorm network on digits, a few steps; process 0 saves the final parameters and state. With --single, the same
training in one process (the reference, in a process of its own like the others)."""

import sys

import jax

from funcnn import data, layers as L, save, train
from funcnn.train import distributed


def model():
    # no conv bias before BatchNorm: its gradient is rounding noise, which Adam would scale up to the learning rate
    return L.serial(L.Conv(4, 3, use_bias=False), L.BatchNorm(), L.Relu(), L.MaxPool(2), L.Flatten(), L.Dense(10))


def main(out, single=False):
    if not single:  # joining the run comes before any computation
        assert distributed.initialize(), "the launcher's FUNCNN_* variables are missing"
    ds = data.digits(size=16)
    net = model()
    _, params, state = net.init(jax.random.PRNGKey(0), (1, 16, 16, 1))
    result = train.fit(net.apply, params, state, train.adam(3e-3), (ds.train.x[:256], ds.train.y[:256]),
                       key=jax.random.PRNGKey(1), epochs=1, batch_size=32, progress=False, max_steps=5)
    if jax.process_index() == 0:
        save(out, {"params": result.params, "state": result.state, "processes": jax.process_count(),
                   "devices": jax.device_count()})


if __name__ == "__main__":
    main(sys.argv[1], single=sys.argv[2:] == ["--single"])

"""The test session's own settings (tests/conftest.py) change nothing a test checks."""

import os
import subprocess
import sys

COMPILED_STEP = """
import hashlib, sys
import jax, jax.numpy as jnp
from funcnn import models, train
jax.config.update("jax_enable_x64", True)
_, params, state = models.lenet5().init(jax.random.PRNGKey(0), (1, 32, 32, 1))
step = train.make_train_step(models.lenet5().apply, train.adam(), donate=False)
args = (params, state, train.adam().init(params), (jnp.zeros((8, 32, 32, 1)), jnp.zeros((8,), jnp.int32)),
        jax.random.PRNGKey(0))
print(hashlib.sha1(step.lower(*args).compile().as_text().encode()).hexdigest())
"""


def test_llvm_level_0_leaves_the_compiled_hlo_as_it_is():
    """The session compiles at --xla_backend_optimization_level=0: LeNet-5's compiled training step (the HLO after
    every XLA pass) is the same text as at the default level, so the tests read and run the programs users get."""
    assert "--xla_backend_optimization_level=0" in os.environ["XLA_FLAGS"]
    runs = {}
    for level in ("0", "2"):
        flags = os.environ["XLA_FLAGS"].replace("--xla_backend_optimization_level=0",
                                                f"--xla_backend_optimization_level={level}")
        done = subprocess.run([sys.executable, "-c", COMPILED_STEP], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, XLA_FLAGS=flags, JAX_COMPILATION_CACHE_DIR=""))
        assert done.returncode == 0, done.stderr[-3000:]
        runs[level] = done.stdout.strip()
    assert len(runs["0"]) == 40 and runs["0"] == runs["2"]

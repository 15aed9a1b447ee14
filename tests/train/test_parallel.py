"""Data parallelism on 8 simulated CPU devices (a subprocess: the device count is fixed when JAX starts)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import jax, jax.numpy as jnp, numpy as np
    from funcnn import layers as L, train
    assert len(jax.devices()) == 8, jax.devices()
    # no conv bias before BatchNorm (its true gradient is 0: only rounding noise, which Adam would amplify)
    model = L.serial(L.Conv(4, 3, use_bias=False), L.BatchNorm(), L.Relu(), L.MaxPool(2), L.Flatten(), L.Dense(10))
    _, params, state = model.init(jax.random.PRNGKey(0), (1, 12, 12, 1))
    opt = train.sgd(0.05)
    rng = np.random.default_rng(0)
    batches = [(jnp.asarray(rng.normal(size=(32, 12, 12, 1)), jnp.float32), jnp.asarray(rng.integers(0, 10, 32)))
               for _ in range(3)]
    single = train.make_train_step(model.apply, opt, donate=False)
    p1, s1, o1 = params, state, opt.init(params)
    for t, b in enumerate(batches):
        p1, s1, o1, m1 = single(p1, s1, o1, b, jax.random.PRNGKey(t))
    step = train.make_data_parallel_train_step(model.apply, opt)
    p8, s8, o8 = params, state, opt.init(params)
    for t, b in enumerate(batches):
        sharded = train.shard_batch(b, step.mesh)
        assert len(sharded[0].sharding.device_set) == 8
        p8, s8, o8, m8 = step(p8, s8, o8, sharded, jax.random.PRNGKey(t))
    for a, b in zip(jax.tree_util.tree_leaves((p1, s1)), jax.tree_util.tree_leaves((p8, s8))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
    # BatchNorm's running statistics saw the global batch: equal to the single-device ones
    np.testing.assert_allclose(s8["1_BatchNorm"]["mean"], s1["1_BatchNorm"]["mean"], rtol=1e-5, atol=1e-6)
    assert int(m8["count"]) == 32
    try:
        train.shard_batch((jnp.ones((12, 2)),), step.mesh)
    except ValueError as err:
        assert "divisible by the 8 devices" in str(err)
    else:
        raise AssertionError("an indivisible batch was accepted")
    print("OK")
''')


def test_sharded_step_equals_single_device_step():
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip())
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-4000:]

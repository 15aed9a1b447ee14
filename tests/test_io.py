"""save / load: exact round trips, no pickle, atomic writes, clear errors for bad files."""

import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as fn
from funcnn import models


def _equal_trees(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name, kwargs", [("lenet5", {}), ("resnet20", {}), ("all_conv", {}), ("localizer", {}),
                                          ("mobilenet_v1", dict(width=0.25))])
def test_round_trip_every_small_model(tmp_path, name, kwargs):
    _, params, state = models.get(name)(10, **kwargs).init(jax.random.PRNGKey(0), (1, *models.INPUT_SHAPES[name]))
    fn.save(tmp_path / "p.npz", {"params": params, "state": state})
    _equal_trees(fn.load(tmp_path / "p.npz"), {"params": params, "state": state})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet18"])
def test_round_trip_large_models(tmp_path, name):
    _, params, state = models.get(name)().init(jax.random.PRNGKey(0), (1, *models.INPUT_SHAPES[name]))
    fn.save(tmp_path / "p.npz", (params, state))
    _equal_trees(fn.load(tmp_path / "p.npz"), (params, state))


def test_dtypes_lists_tuples_none_and_custom_nodes(tmp_path):
    tree = {"a": [jnp.arange(3, dtype=jnp.int32), (jnp.ones(2, jnp.bfloat16), None)], "b": jnp.float64(2.5)}
    fn.save(tmp_path / "t.npz", tree)
    _equal_trees(fn.load(tmp_path / "t.npz"), tree)
    opt_state = optax.adam(1e-3).init({"w": jnp.ones((2, 3))})  # NamedTuples: load with a template
    fn.save(tmp_path / "o.npz", opt_state)
    with pytest.raises(ValueError, match="pass like="):
        fn.load(tmp_path / "o.npz")
    _equal_trees(fn.load(tmp_path / "o.npz", like=opt_state), opt_state)


def test_no_pickle_in_the_file(tmp_path):
    fn.save(tmp_path / "p.npz", {"w": jnp.ones(3)})
    with np.load(tmp_path / "p.npz", allow_pickle=False) as archive:  # readable without pickle
        assert set(archive.files) == {"__funcnn__", "leaf_0"}


def test_truncated_and_foreign_files_raise_clear_errors(tmp_path):
    path = tmp_path / "p.npz"
    fn.save(path, {"w": jnp.ones((100, 100))})
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(fn.CorruptFileError, match="cut.npz is not a complete funcnn file"):
        fn.load(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(fn.CorruptFileError, match="text.npz"):
        fn.load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(fn.CorruptFileError, match="not one written by funcnn.save"):
        fn.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        fn.load(tmp_path / "missing.npz")
    with pytest.raises(fn.CorruptFileError, match="template expects"):
        fn.load(path, like={"w": jnp.ones((3, 3))})
    # a flipped byte inside an array fails the zip CRC
    corrupt = bytearray(data)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("leaf_0.npy")
    corrupt[info.header_offset + 200] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(corrupt))
    with pytest.raises(fn.CorruptFileError, match="flip.npz"):
        fn.load(tmp_path / "flip.npz")


def test_saved_files_follow_the_umask(tmp_path):
    """Files written atomically (params, checkpoints, exports) get the mode any file the process writes gets: 0644
    under umask 022 (mkstemp's 0600 broke the README's shared-directory example), 0640 under 027."""
    import os

    for mask, mode in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(mask)
        try:
            fn.save(tmp_path / f"p{mask}.npz", {"w": np.ones(2)})
            fn.save(tmp_path / f"p{mask}.safetensors", {"w": np.ones(2)})
        finally:
            os.umask(old)
        for suffix in ("npz", "safetensors"):
            assert (tmp_path / f"p{mask}.{suffix}").stat().st_mode & 0o777 == mode


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "p.npz"
    fn.save(path, {"w": jnp.ones(3)})

    class Boom:
        shape, dtype = (1,), np.float32

        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        fn.save(path, {"w": jnp.zeros(3), "x": Boom()})
    np.testing.assert_array_equal(fn.load(path)["w"], jnp.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]  # no temporary file left behind

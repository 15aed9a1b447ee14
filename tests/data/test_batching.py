"""batch_indices is the one place an epoch is cut into batches: fit, fit_replicas and batches take theirs from it."""

import jax
import numpy as np
import pytest

from funcnn.data import batches
from funcnn.data.batching import batch_indices


@pytest.mark.parametrize("n, size, drop_last", [(10, 3, True), (10, 3, False), (9, 3, True), (5, 5, False)])
def test_an_epochs_batches_cover_a_permutation_once(n, size, drop_last):
    key = jax.random.PRNGKey(0)
    parts = list(batch_indices(n, size, key=key, drop_last=drop_last))
    joined = np.concatenate(parts)
    expected = (n // size) * size if drop_last else n
    assert len(joined) == expected and len(set(joined.tolist())) == expected and set(joined) <= set(range(n))
    assert all(len(p) == size for p in parts[:-1]) and (len(parts[-1]) == size or not drop_last)
    assert np.array_equal(joined, np.asarray(jax.random.permutation(key, n))[:expected])


def test_start_resumes_the_same_epoch_and_no_key_keeps_the_order():
    key = jax.random.PRNGKey(1)
    whole = list(batch_indices(11, 2, key=key))
    assert all(np.array_equal(a, b) for a, b in zip(whole[3:], batch_indices(11, 2, key=key, start=3)))
    assert np.array_equal(np.concatenate(list(batch_indices(5, 2))), np.arange(5))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        next(batch_indices(5, 0))


def test_batches_yield_the_rows_batch_indices_name():
    x, y = np.arange(14.0)[:, None], np.arange(14)
    key = jax.random.PRNGKey(2)
    for (xb, yb), index in zip(batches(x, y, 4, key=key, start=1), batch_indices(14, 4, key=key, start=1)):
        assert np.array_equal(np.asarray(yb), index) and np.array_equal(np.asarray(xb)[:, 0], index)

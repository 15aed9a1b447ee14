"""Loaders, tested offline on small files the tests write: IDX, the CIFAR-10 python archive, digits, patterns."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from funcnn import data
from funcnn.data import files


def _write_mnist(directory, n_train=12, n_test=5, gz=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        data.write_idx(directory / (name + suffix), array)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_local_idx_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    ds = data.mnist(tmp_path, val_fraction=0.25)
    assert ds.train.x.shape == (9, 28, 28, 1) and ds.val.x.shape == (3, 28, 28, 1) and ds.test.x.shape == (5, 28, 28, 1)
    assert ds.train.x.dtype == np.float32 and 0 <= ds.train.x.min() and ds.train.x.max() <= 1
    np.testing.assert_array_equal(ds.test.y, arrays["t10k-labels-idx1-ubyte"])
    np.testing.assert_allclose(ds.test.x[..., 0], arrays["t10k-images-idx3-ubyte"] / 255.0, rtol=1e-6)
    # train + val together are exactly the training file, split with a fixed seed
    joined = np.sort(np.concatenate([ds.train.y, ds.val.y]))
    np.testing.assert_array_equal(joined, np.sort(arrays["train-labels-idx1-ubyte"]))
    assert np.array_equal(data.mnist(tmp_path, val_fraction=0.25).val.y, ds.val.y)
    assert data.fashion_mnist(tmp_path).class_names[0] == "T-shirt/top"


def test_idx_errors_name_the_file(tmp_path):
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte is truncated"):
        data.mnist(tmp_path)
    path.write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte is not an IDX file: bad magic number 1234"):
        data.mnist(tmp_path)
    path.unlink()
    with pytest.raises(data.DataError, match=r"missing data files in .*: train-images-idx3-ubyte.gz .*--download"):
        data.mnist(tmp_path)
    with pytest.raises(data.DataError, match="data directory does not exist"):
        data.mnist(tmp_path / "nowhere")
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(data.DataError, match="bad.gz"):
        data.read_idx(tmp_path / "bad.gz")


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"batch", b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def _write_cifar(path, n=4):
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
            blob = pickle.dumps(_cifar_batch(n, i), protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar10_from_the_python_archive(tmp_path):
    _write_cifar(tmp_path / "cifar-10-python.tar.gz")
    ds = data.cifar10(tmp_path, val_fraction=0.25)
    assert ds.train.x.shape == (15, 32, 32, 3) and ds.val.x.shape == (5, 32, 32, 3) and ds.test.x.shape == (4, 32, 32, 3)
    batch = _cifar_batch(4, 5)
    np.testing.assert_array_equal(ds.test.y, batch[b"labels"])
    # channel-major rows (R plane, G plane, B plane) become NHWC pixels
    np.testing.assert_allclose(ds.test.x[0, 0, 0], batch[b"data"][0, [0, 1024, 2048]] / 255.0, rtol=1e-6)
    assert ds.class_names[3] == "cat"


def test_cifar_parser_refuses_code_in_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    blob = pickle.dumps({b"data": Evil(), b"labels": []})
    with pytest.raises(data.DataError, match="forbidden global"):
        files.read_cifar_batch(blob, "evil_batch")
    with pytest.raises(data.DataError, match="not a valid CIFAR-10 batch"):
        files.read_cifar_batch(b"garbage", "garbage_batch")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"truncated")
    with pytest.raises(data.DataError, match="not a readable CIFAR-10 archive"):
        data.cifar10(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataError, match="missing data file"):
        data.cifar10(empty)


def test_fetch_verifies_sha256_and_never_needs_the_network_when_the_file_is_there(tmp_path):
    blob = b"some dataset bytes"
    (tmp_path / "file.gz").write_bytes(blob)
    good = hashlib.sha256(blob).hexdigest()
    assert files.fetch("https://example.invalid/file.gz", good, tmp_path) == tmp_path / "file.gz"
    with pytest.raises(data.DataError, match=r"file.gz has SHA-256 .* expected 00"):
        files.fetch("https://example.invalid/file.gz", "00" * 32, tmp_path)
    with pytest.raises(data.DataError, match=r"missing data file: .*other.gz \(download=False\)"):
        files.fetch("https://example.invalid/other.gz", good, tmp_path, download=False)
    # a download that fails leaves nothing behind and says what to do
    with pytest.raises(data.DataError, match="could not download"):
        files.fetch("http://127.0.0.1:9/other.gz", good, tmp_path, timeout=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.gz"]


def test_published_checksums_are_well_formed():
    for digests in data.datasets.SHA256.values():
        assert len(digests) == 4 and all(len(d) == 64 and int(d, 16) >= 0 for d in digests)
    assert len(data.datasets.CIFAR10_SHA256) == 64


def test_digits_ships_offline_and_is_split_with_a_fixed_seed():
    ds = data.digits()
    assert ds.train.x.shape[1:] == (32, 32, 1) and ds.num_classes == 10
    assert len(ds.train.x) + len(ds.val.x) + len(ds.test.x) == 1797
    assert 0 <= ds.train.x.min() and ds.train.x.max() <= 1
    again = data.digits()
    np.testing.assert_array_equal(ds.test.y, again.test.y)
    assert data.digits(size=8).train.x.shape[1:] == (8, 8, 1)


def test_patterns3x3_and_load_by_name():
    ds = data.load("patterns3x3")
    assert ds.train.x.shape[1:] == (3, 3, 1) and set(np.unique(ds.train.y)) == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; known datasets: cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="takes no data directory"):
        data.load("digits", "/tmp")


def test_fit_to_shape():
    x = np.ones((2, 28, 28, 1), np.float32)
    padded = data.fit_to_shape(x, (32, 32, 1))
    assert padded.shape == (2, 32, 32, 1) and padded[:, :2].sum() == 0 and padded[:, 2:30, 2:30].min() == 1
    assert data.fit_to_shape(x, (32, 32, 3)).shape == (2, 32, 32, 3)
    assert data.fit_to_shape(np.ones((1, 8, 8, 3)), (64, 64, 1)).shape == (1, 64, 64, 1)


def test_batches_shuffle_drop_last_and_start():
    import jax

    x, y = np.arange(10)[:, None].astype(np.float32), np.arange(10)
    plain = [np.asarray(b[1]).tolist() for b in data.batches(x, y, 4)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(list(data.batches(x, y, 4, drop_last=True))) == 2
    key = jax.random.PRNGKey(3)
    shuffled = [np.asarray(b[1]).tolist() for b in data.batches(x, y, 4, key=key)]
    assert sorted(sum(shuffled, [])) == list(range(10)) and shuffled != plain
    assert shuffled == [np.asarray(b[1]).tolist() for b in data.batches(x, y, 4, key=key)]
    assert shuffled[1:] == [np.asarray(b[1]).tolist() for b in data.batches(x, y, 4, key=key, start=1)]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(data.batches(x, y, 0))


def test_batches_of_pytree_labels_stay_aligned():
    import jax

    x, y = np.arange(10)[:, None].astype(np.float32), np.arange(10)
    labels = {"class": y, "box": np.stack([y, -y], axis=1).astype(np.float32)}
    for xb, lb in data.batches(x, labels, 3, key=jax.random.PRNGKey(0)):
        np.testing.assert_array_equal(lb["class"], xb[:, 0])
        np.testing.assert_array_equal(lb["box"][:, 1], -xb[:, 0])
    with pytest.raises(ValueError, match=r"same length, got shapes .*\(10, 1\).*\(9, 2\)"):
        list(data.batches(x, {"class": y, "box": np.zeros((9, 2))}, 3))


def test_spiral_arms_are_balanced_and_not_linearly_separable():
    x, y = data.spiral(50, 3, seed=1)
    assert x.shape == (150, 2) and x.dtype == np.float32 and np.bincount(y).tolist() == [50, 50, 50]
    assert np.abs(x).max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(data.spiral(50, 3, seed=1)[0], x)
    # the best least-squares linear classifier (one-hot targets) stays far from perfect
    features = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    w = np.linalg.lstsq(features, np.eye(3)[y], rcond=None)[0]
    assert (np.argmax(features @ w, axis=1) == y).mean() < 0.7
    with pytest.raises(ValueError, match="classes >= 2"):
        data.spiral(10, 1)


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 (an ephemeral port) serving tmp_path/served, and the list of paths requested."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_port}/", requests
    server.shutdown()
    server.server_close()


def test_download_fetches_verifies_and_loads_over_http(local_server, tmp_path, monkeypatch):
    """download=True downloads the four files (atomically, SHA-256 verified) and loads them; without it nothing is
    requested; a file whose checksum differs is refused and not kept."""
    from funcnn.data import datasets

    served, url, requests = local_server
    arrays = _write_mnist(served)
    digests = tuple(files.sha256(served / (stem + ".gz")) for stem in datasets.IDX_FILES)
    monkeypatch.setattr(datasets, "MNIST_URL", url)
    monkeypatch.setitem(datasets.SHA256, "mnist", digests)
    monkeypatch.setenv("FUNCNN_DATA", str(tmp_path / "cache"))

    with pytest.raises(data.DataError, match=r"missing data files in .*cache/mnist.*--download"):
        data.mnist()
    assert requests == []  # the network is not touched without download=True
    ds = data.mnist(download=True, val_fraction=0.25)
    assert len(requests) == 4 and ds.test.x.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(ds.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(s + ".gz" for s in
                                                                                       datasets.IDX_FILES)
    data.mnist()  # now offline, from the cache
    assert len(requests) == 4

    monkeypatch.setitem(datasets.SHA256, "mnist", ("00" * 32,) + digests[1:])
    target = tmp_path / "other"
    target.mkdir()
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte.gz \(downloaded from http://127.0.0.1:.*\) has SHA-256 .*expected 0000.*not kept"):
        data.mnist(target, download=True)
    assert not (target / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in target.iterdir() if p.name.startswith(".download-")]  # no partial file left


def test_cifar10_download_over_http(local_server, tmp_path, monkeypatch):
    from funcnn.data import datasets

    served, url, requests = local_server
    archive = served / "cifar-10-python.tar.gz"
    _write_cifar(archive)
    monkeypatch.setattr(datasets, "CIFAR10_URL", url + archive.name)
    monkeypatch.setattr(datasets, "CIFAR10_SHA256", files.sha256(archive))
    target = tmp_path / "cifar"
    target.mkdir()
    with pytest.raises(data.DataError, match="cifar-10-python.tar.gz.*--download"):
        data.cifar10(target)
    ds = data.cifar10(target, download=True)
    assert requests == ["/" + archive.name] and ds.test.x.shape[1:] == (32, 32, 3)

"""funcnn.interop: PyTorch weights in and out, checked as equal logits against PyTorch itself; safetensors files.

The tests that need PyTorch skip with a visible reason where it is not installed (CI installs only the project);
`pip install ".[test,torch]"` and then `python -m pytest tests/test_interop.py` runs them all (see the README).
"""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

import funcnn as fn
from funcnn import interop, models


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is not installed: pip install '.[torch]' runs these tests")


def _torchvision():
    _torch()
    return pytest.importorskip("torchvision", reason="torchvision is not installed: pip install '.[torch]'")


def _randomise_batchnorm(net, torch):
    """Fresh BatchNorm layers are the identity; give them statistics so that the test sees them."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def _compare_logits(name, net, torch, shape, model):
    sd = net.state_dict()
    params, state = interop.from_torch(name, sd)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    ours = np.asarray(jax.jit(lambda p, s, x: model.apply(p, s, x)[0])(params, state, jnp.asarray(x, jnp.float32)))
    with torch.no_grad():
        theirs = net.eval()(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).numpy()
    assert np.max(np.abs(ours - theirs)) <= 1e-4 * np.max(np.abs(theirs)), name
    back = interop.to_torch(name, params, state)
    assert list(back) == list(sd)  # the same keys, in PyTorch's order
    for key, value in sd.items():
        np.testing.assert_array_equal(back[key], value.numpy(), err_msg=key)  # the round trip is exact


def _lenet_torch(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def _resnet20_torch(torch):
    """ResNet-20 as funcnn builds it (projection shortcuts), with torchvision's ResNet names."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                               if stride != 1 or cin != cout else None)

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
            self.layer1 = nn.Sequential(*[Block(16, 16, 1) for _ in range(3)])
            self.layer2 = nn.Sequential(Block(16, 32, 2), Block(32, 32, 1), Block(32, 32, 1))
            self.layer3 = nn.Sequential(Block(32, 64, 2), Block(64, 64, 1), Block(64, 64, 1))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(x.mean((2, 3)))

    return ResNet20()


def test_lenet5_from_a_plain_sequential():
    torch = _torch()
    torch.manual_seed(0)
    _compare_logits("lenet5", _lenet_torch(torch), torch, (4, 32, 32, 1), models.lenet5(10))


def test_resnet20_with_batchnorm_statistics():
    torch = _torch()
    torch.manual_seed(1)
    net = _resnet20_torch(torch)
    _randomise_batchnorm(net, torch)
    _compare_logits("resnet20", net, torch, (3, 32, 32, 3), models.resnet20(10))


@pytest.mark.parametrize("name, batch", [("resnet18", 2), ("alexnet", 2), ("vgg16", 1)])
def test_torchvision_models(name, batch):
    torchvision = _torchvision()
    import torch

    torch.manual_seed(2)
    net = getattr(torchvision.models, name)(weights=None)
    _randomise_batchnorm(net, torch)
    model = models.alexnet(1000, variant="torchvision") if name == "alexnet" else models.get(name)(1000)
    _compare_logits(name, net, torch, (batch, 224, 224, 3), model)


def _r3d_18_torch(torch):
    """torchvision.models.video.r3d_18's modules and names (VideoResNet with BasicStem, Conv3DSimple, BasicBlock),
    written out so that the test needs PyTorch alone."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU())
            self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
            self.downsample = (nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))
                               if stride != 1 or cin != cout else None)

        def forward(self, x):
            shortcut = x if self.downsample is None else self.downsample(x)
            return torch.relu(self.conv2(self.conv1(x)) + shortcut)

    class R3D(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                      nn.BatchNorm3d(64), nn.ReLU())
            cin = 64
            for s, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
                setattr(self, f"layer{s}", nn.Sequential(Block(cin, cout, stride), Block(cout, cout, 1)))
                cin = cout
            self.fc = nn.Linear(512, 400)

        def forward(self, x):
            x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
            return self.fc(x.mean((2, 3, 4)))

    return R3D()


def test_r3d_18_from_torchvision_video_layout():
    """The 3-D ResNet-18 in torchvision.models.video's layout (NCDHW, stem.0 / layerX.Y.conv1.0 names), random
    weights and BatchNorm statistics: the same logits on a short clip, and the exact round trip of every tensor."""
    torch = _torch()
    torch.manual_seed(3)
    net = _r3d_18_torch(torch)
    _randomise_batchnorm(net, torch)
    assert sum(p.numel() for p in net.parameters()) == 33_371_472
    _compare_logits("r3d_18", net, torch, (1, 4, 32, 32, 3), models.r3d_18(400))


def test_a_state_dict_under_other_names_matches_by_position():
    torch = _torch()
    torch.manual_seed(3)
    sd = _lenet_torch(torch).state_dict()
    renamed = {f"layer_{i}": v for i, v in enumerate(sd.values())}
    params, _ = interop.from_torch("lenet5", renamed)
    reference, _ = interop.from_torch("lenet5", sd)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(reference)):
        np.testing.assert_array_equal(a, b)


def _numpy_lenet_state_dict():
    """The state dict of a PyTorch LeNet-5 as NumPy arrays, built by funcnn itself (no PyTorch needed)."""
    _, params, state = models.lenet5().init(jax.random.PRNGKey(0), (1, 32, 32, 1))
    return interop.to_torch("lenet5", params, state), params


def test_round_trip_without_torch_and_safetensors_files(tmp_path):
    sd, params = _numpy_lenet_state_dict()
    assert sd["0.weight"].shape == (6, 1, 5, 5) and sd["7.weight"].shape == (120, 400)
    again, _ = interop.from_torch("lenet5", sd)
    for a, b in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "lenet5.safetensors"
    interop.save_safetensors(path, sd)
    read = interop.read_state_dict(path)
    assert set(read) == set(sd) and all(np.array_equal(read[k], sd[k]) for k in sd)  # (safetensors sorts names)


def test_pth_files_are_read_with_weights_only(tmp_path):
    torch = _torch()
    net = _lenet_torch(torch)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    for name in ("w.pth", "ckpt.pt"):
        sd = interop.read_state_dict(tmp_path / name)
        np.testing.assert_array_equal(sd["0.weight"], net.state_dict()["0.weight"].numpy())

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match=r"evil.pth could not be read with torch.load\(weights_only=True\)"):
        interop.read_state_dict(tmp_path / "evil.pth")


def test_mismatched_state_dicts_list_what_is_wrong(tmp_path):
    sd, _ = _numpy_lenet_state_dict()
    missing = {k: v for k, v in sd.items() if k != "3.bias"}
    with pytest.raises(interop.StateDictMismatch, match=r"missing \(1\): 3.bias"):
        interop.from_torch("lenet5", missing)
    extra = dict(sd, **{"99.weight": np.ones((2, 2), np.float32)})
    with pytest.raises(interop.StateDictMismatch, match=r"unexpected \(1\): 99.weight"):
        interop.from_torch("lenet5", extra, num_classes=10)
    wrong = dict(sd, **{"3.weight": np.ones((16, 6, 3, 3), np.float32)})
    with pytest.raises(interop.StateDictMismatch,
                       match=r"mis-shaped \(1\): 3.weight: \(16, 6, 3, 3\) given, \(16, 6, 5, 5\) expected"):
        interop.from_torch("lenet5", wrong)
    with pytest.raises(ValueError, match="no PyTorch layout for model 'mobilenet_v1'"):
        interop.from_torch("mobilenet_v1", sd)
    with pytest.raises(FileNotFoundError, match="no such file"):
        interop.read_state_dict(tmp_path / "none.safetensors")
    (tmp_path / "w.bin").write_bytes(b"??")
    with pytest.raises(ValueError, match="unknown weights format"):
        interop.read_state_dict(tmp_path / "w.bin")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        interop.read_state_dict(tmp_path / "bad.safetensors")


def test_funcnn_save_writes_safetensors_other_tools_read(tmp_path):
    from safetensors.numpy import load_file, save_file

    _, params, state = models.resnet20().init(jax.random.PRNGKey(1), (1, 32, 32, 3))
    tree = {"params": params, "state": state, "step": jnp.asarray(7), "half": jnp.ones(3, jnp.bfloat16)}
    fn.save(tmp_path / "r.safetensors", tree)
    back = fn.load(tmp_path / "r.safetensors")
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(tree)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(tree)):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(np.asarray(a), np.asarray(b))
    plain = load_file(str(tmp_path / "r.safetensors"))  # another tool: named tensors
    assert "params/0_Conv/w" in plain and plain["params/0_Conv/w"].shape == (3, 3, 3, 16)
    fn.save(tmp_path / "explicit.bin", {"a": jnp.ones(2)}, format="safetensors")
    assert set(load_file(str(tmp_path / "explicit.bin"))) == {"a"}
    save_file({"x": np.arange(3, dtype=np.float32)}, str(tmp_path / "foreign.safetensors"))
    assert list(fn.load(tmp_path / "foreign.safetensors")) == ["x"]
    with pytest.raises(fn.CorruptFileError, match="was not written by funcnn.save"):
        fn.load(tmp_path / "foreign.safetensors", like={"x": jnp.ones(3)})
    with pytest.raises(ValueError, match="format must be one of npz, safetensors"):
        fn.save(tmp_path / "x", {"a": jnp.ones(2)}, format="pickle")

"""The names the command line offers, importable without JAX (so that `funcnn --help` answers at once).

tests/test_cli.py checks that they equal the registries they mirror: `funcnn.models.MODELS`, `funcnn.data.LOADERS`,
`funcnn.train.RECIPES` and the primitives `python -m funcnn.verify` checks.
"""

MODELS = ("alexnet", "all_conv", "lenet5", "localizer", "mobilenet_v1", "resnet18", "resnet20", "vgg16")
DATASETS = ("cifar10", "digits", "fashion_mnist", "mnist", "patterns3x3")
OPTIMIZERS = ("adam", "alexnet", "resnet", "sgd")

"""Lazy package attributes (PEP 562): a package names what it exports and imports a submodule only when one of its
names is first used, so that importing the package (or `funcnn --help`) loads no JAX and no checker."""

from __future__ import annotations

import importlib


def lazy_attributes(package: str, namespace: dict, names: dict, submodules) -> tuple:
    """(__getattr__, __dir__) for `package`: names maps an exported name to the submodule defining it (the value is
    cached in the package's `namespace` once imported); submodules are importable as attributes."""

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
            namespace[name] = value
            return value
        if name in submodules:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | set(submodules))

    return __getattr__, __dir__


__all__ = ["lazy_attributes"]

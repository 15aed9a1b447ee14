"""The build of funcnn's one native part: the CPU convolution engine (`native/onednn_conv.cc`, oneDNN's convolution
primitives behind XLA's FFI), as the extension `funcnn.primitives.conv._onednn`. Everything else is in
pyproject.toml.

The extension is optional: where no C++ compiler exists, or oneDNN's headers are missing (a platform other than Linux
x86-64, where PyPI has no `onednn-devel-cpu-gomp`), the install goes on without it and funcnn runs its convolutions
on XLA's CPU paths, saying so once (`funcnn.primitives.conv.paths.onednn`). oneDNN comes from PyPI: the build
requirement `onednn-devel-cpu-gomp` (headers; it pulls `onednn-cpu-gomp`, libdnnl.so.3, to link against) and the
runtime dependency `onednn-cpu-gomp`, installed into the environment's lib/, which the extension's RPATH names.
XLA's FFI headers are vendored from the oldest supported jaxlib (`native/third_party`).
"""

import importlib.metadata
import os
import sysconfig
from pathlib import Path

from setuptools import Extension, setup


def _installed(distribution, tail):
    """Where an installed distribution (in pip's build environment, or in the environment itself) put the file whose
    path ends with `tail`, or None."""
    try:
        files = importlib.metadata.distribution(distribution).files or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    paths = (Path(f.locate()).resolve() for f in files if f.name == Path(tail).name)
    return next((p for p in paths if p.as_posix().endswith(tail)), None)


def onednn_prefix():
    """The prefix whose include/ holds oneapi/dnnl/dnnl.hpp and whose lib/ holds libdnnl.so: $FUNCNN_ONEDNN_PREFIX,
    or where pip installed the build requirements onednn-devel-cpu-gomp and onednn-cpu-gomp, or None."""
    header = _installed("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
    library = _installed("onednn-cpu-gomp", "lib/libdnnl.so")
    candidates = [os.environ.get("FUNCNN_ONEDNN_PREFIX"), sysconfig.get_paths()["data"]]
    if header is not None and library is not None and header.parents[3] == library.parents[1]:
        candidates.insert(1, str(library.parents[1]))  # <prefix>/include/oneapi/dnnl/dnnl.hpp, <prefix>/lib/libdnnl.so
    for prefix in filter(None, candidates):
        if (Path(prefix) / "include/oneapi/dnnl/dnnl.hpp").exists() and (Path(prefix) / "lib/libdnnl.so").exists():
            return Path(prefix)
    return None


def extensions():
    prefix = onednn_prefix()
    if prefix is None:
        print("funcnn: oneDNN's headers or library not found (onednn-devel-cpu-gomp, onednn-cpu-gomp): building "
              "without the CPU convolution engine")
        return []
    return [Extension(
        "funcnn.primitives.conv._onednn",
        sources=["native/onednn_conv.cc"],
        include_dirs=["native/third_party", str(prefix / "include")],
        library_dirs=[str(prefix / "lib")],
        libraries=["dnnl"],
        # site-packages/funcnn/primitives/conv -> <environment>/lib, where onednn-cpu-gomp puts libdnnl.so.3
        runtime_library_dirs=["$ORIGIN/../../../../.."],
        extra_compile_args=["-std=c++17", "-O2", "-fopenmp", "-fvisibility=hidden"],
        extra_link_args=["-fopenmp"],
        language="c++",
        optional=True,  # a failed compile warns and the install goes on without the engine
    )]


setup(ext_modules=extensions())

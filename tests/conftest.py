"""Test configuration: float64 enabled (finite differences need it), hypothesis profiles, one compilation cache.

HYPOTHESIS_PROFILE=ci (default) keeps each sweep to a bounded sample; HYPOTHESIS_PROFILE=full runs long sweeps.

The session shares JAX's persistent compilation cache among its workers and every process a test starts (the CLI,
the experiments, the benchmark scripts inherit the environment): a program compiled once, such as the main job's
training step that a dozen tests run, is loaded the next time instead of compiled again. Every program is kept,
however fast it compiled (the CLI's and the experiments' tests: 160 s -> 137 s against keeping those over 0.3 s).
The values and the checks are the same; only XLA's compile work is shared. A directory is made per session and
removed at its end; a JAX_COMPILATION_CACHE_DIR set by the caller is used as it is and kept.

XLA compiles the tests' programs with LLVM's optimisation level 0 (`--xla_backend_optimization_level=0`, for the
session and every process it starts): the HLO, and so every value and every compiled program a test inspects, is the
same (tests/test_suite_settings.py compares LeNet-5's compiled step at both levels); only the machine code is less
tuned, which nothing here times. Compiling is most of the suite's time, and this
halves it for the larger programs (pooling_study's quick run: 38 s -> 20 s). An XLA_FLAGS that names its own
--xla_backend_optimization_level is kept as it is (set it to 2 to test the default code generation).
"""

import os
import shutil
import tempfile

_OWN_CACHE = None  # the directory this process made (the xdist controller's, inherited by its workers)
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # set before jax is imported, so its config reads it
    _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="funcnn-tests-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # every program (see above)
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):  # read when the backend starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               derandomize=True, print_blob=True)
settings.register_profile("ci", max_examples=10, **_common)
settings.register_profile("full", max_examples=200, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_unconfigure(config):
    """The session's own cache goes with it, removed by the process that made it (under xdist the controller,
    after every worker has finished)."""
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)

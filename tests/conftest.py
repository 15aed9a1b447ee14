"""Test configuration: float64 enabled (finite differences need it), hypothesis profiles.

HYPOTHESIS_PROFILE=ci (default) keeps each sweep to a bounded sample; HYPOTHESIS_PROFILE=full runs long sweeps.
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               derandomize=True, print_blob=True)
settings.register_profile("ci", max_examples=10, **_common)
settings.register_profile("full", max_examples=200, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

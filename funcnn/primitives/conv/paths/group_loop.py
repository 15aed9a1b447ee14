"""Group loop: a grouped convolution as one single-group convolution per group, in a loop (`lax.map`), each the
canonical form.

Why it exists: per-example work under `vmap` (per-example gradients) folds its slices into the groups of one op,
which funcnn's oneDNN engine runs as one call; where that call is not made (a program exported with `jax.export`
computes the engine's rules on XLA's paths), XLA's CPU backend would run the grouped dW with its many batch groups
far slower than one single-group dW per group in a loop (docs/performance.md, "Why each conv path is where it
is"). Taken for the dW of many groups on a few images (the table's `many_groups_on_few_images`); its forward and dX
exist for `force_algorithm` and are swept with the other paths, but XLA's grouped forms measured faster for them.

Channels of group k are the k-th contiguous block of the input's and of the output's channels, as in
`lax.conv_general_dilated`'s feature_group_count: x (N, *S, G*c), w (*K, c, G*f), z (N, *S_out, G*f).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from ..spec import ConvSpec
from . import canonical


def split_groups(a, groups: int):
    """(..., G*c) -> (G, ..., c): the groups' channel blocks, the group first (also how the conv ops' batch rule
    unfolds a vmapped axis it folded into the groups)."""
    return jnp.moveaxis(a.reshape(*a.shape[:-1], groups, a.shape[-1] // groups), -2, 0)


def merge_groups(a):
    """(G, ..., c) -> (..., G*c): the inverse of `split_groups`."""
    return jnp.moveaxis(a, 0, -2).reshape(*a.shape[1:-1], a.shape[0] * a.shape[-1])


def conv(x, w, spec: ConvSpec):
    """z[n, i, (k, f)] = sum_{u, c} x_pad[n, S*i + D*u, (k, c)] * w[u, c, (k, f)], one group k per iteration."""
    one = spec._replace(groups=1)
    return merge_groups(lax.map(lambda xw: canonical.conv(*xw, one),
                                (split_groups(x, spec.groups), split_groups(w, spec.groups))))


def dx(g, w, spec: ConvSpec, in_sizes):
    """dX[n, y, (k, c)] = sum_{f, i} g_up[n, i, (k, f)] * w[y - i, c, (k, f)], one group k per iteration."""
    one = spec._replace(groups=1)
    return merge_groups(lax.map(lambda gw: canonical.dx(*gw, one, in_sizes),
                                (split_groups(g, spec.groups), split_groups(w, spec.groups))))


def dw(x, g, spec: ConvSpec, w_shape):
    """dW[u, c, (k, f)] = sum_{n, i} g[n, i, (k, f)] * x_pad[n, S*i + D*u, (k, c)], one group k per iteration."""
    one = spec._replace(groups=1)
    one_shape = (*w_shape[:-1], w_shape[-1] // spec.groups)
    return merge_groups(lax.map(lambda xg: canonical.dw(*xg, one, one_shape),
                                (split_groups(x, spec.groups), split_groups(g, spec.groups))))

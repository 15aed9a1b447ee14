"""Pooling family: max, mean and p-norm pooling (each with ceil_mode), adaptive mean and max pooling, global mean
pooling, and max unpooling, over (N, *spatial, C) with one, two or three spatial axes (one N-d function per kind,
with thin 1-D / 2-D / 3-D names).

Pooling acts on each channel separately. The window offset u runs over the |W| = prod(K) positions of a window
(K^2 in the lecture's square 2-D case), output position i over the output:

    max:    y[n, i, c] = max_u x_pad[n, S*i + u, c],   P[n, i, c] = argmax (first in row-major window order)
    mean:   y[n, i, c] = (1/|W|) sum_u x_pad[n, S*i + u, c]
    p-norm: y[n, i, c] = ((1/|W|) sum_u |x_pad[n, S*i + u, c]|^p)^(1/p)

Tangent (JVP) rules, each linear in dx (docs/primitives.md, "Derivations"), and the backward rules they transpose to
(lecture 004, "Derivative of max pooling", "Derivative of mean pooling"), "+=" over overlapping windows:

    max:    dy[n, i, c] = dx[P[n, i, c]]                  dx[P[n, i, c]] += g[n, i, c]   (one input per window)
    mean:   dy = mean of dx over the window (the op)      dx[n, S*i + u, c] += g[n, i, c] / |W|
    p-norm: dy[i] = sum_u c[i, u] dx[S*i + u]             dx[S*i + u] += c[i, u] g[i]
            c[i, u] = sign(x_u) (|x_u| / y_i)^(p-1) / |W|

Each pair (tangent, backward) is two linear ops that transpose into each other (`carrier.define_adjoint_pair`), so
`jax.jvp` runs the tangent, `jax.grad` the backward, and their derivatives again one of the two. The mean pools are
linear themselves: the forward and its backward are such a pair. Every backward places values with interior
padding (`place_windows`) instead of a scatter: no index arrays, deterministic on every backend.
"""

from .adaptive import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d,
                       adaptive_max_pool2d, adaptive_max_pool3d, adaptive_windows, global_avg_pool1d, global_avg_pool2d,
                       global_avg_pool3d)
from .common import pool_geometry
from .unpool import max_unpool1d, max_unpool2d, max_unpool3d, unpool_sizes
from .windowed import (avg_pool1d, avg_pool2d, avg_pool3d, lp_pool1d, lp_pool2d, lp_pool3d, max_pool1d, max_pool2d,
                       max_pool3d)

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "lp_pool1d",
           "lp_pool2d", "lp_pool3d", "global_avg_pool1d", "global_avg_pool2d", "global_avg_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "adaptive_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
           "pool_geometry", "adaptive_windows", "unpool_sizes"]

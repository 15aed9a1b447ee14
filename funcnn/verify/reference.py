"""Literal reference implementations: the tests' oracle, never the library's fast path.

Each function mirrors the lecture pseudo-code with explicit sums over window offsets and explicit index arithmetic
(`S*i + D*u`), built only from `jnp` so that `jax.grad` / `jax.vjp` / `jax.jvp` can differentiate it. Signatures and
layouts equal the primitives' (NHWC / HWIO). They are slow, and meant for small shapes.

The oracle is independent of what it checks: it computes its own output sizes and paddings from the lecture's
formulas (docs/primitives.md, "Derivations") and imports nothing from `funcnn.primitives`, so a mistake in the
primitives' size or padding arithmetic cannot pass both (tests/verify/test_reference.py patches the primitives'
helpers to a wrong answer and sees the two disagree).

Max pooling follows the lecture literally: P = argmax over the window (the first maximum), y = Y(P); its autodiff
therefore routes the gradient to the first maximum, like funcnn's rule.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------------------------------------------------------
# sizes and padding, from the lecture's formulas (written here again on purpose: see the module docstring)


def _ints(value, n):
    """An int or n ints, as a list of n ints."""
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    values = [int(v) for v in value]
    assert len(values) == n, f"expected {n} values, got {value!r}"
    return values


def _same(size, k_eff, stride):
    """Lecture 004, zero padding for "SAME": the output has ceil(N/S) entries; pad as symmetrically as possible, the
    extra entry (an odd total) at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return [total // 2, total - total // 2]


def _pads(padding, sizes, k_eff, stride):
    """(lo, hi) per spatial axis for "VALID", "SAME", an int, n ints or n pairs."""
    n = len(sizes)
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return [[0, 0] for _ in range(n)]
        assert padding.upper() == "SAME", padding
        return [_same(s, k, st) for s, k, st in zip(sizes, k_eff, stride)]
    if isinstance(padding, (int, np.integer)):
        return [[int(padding)] * 2 for _ in range(n)]
    return [[int(p)] * 2 if isinstance(p, (int, np.integer)) else [int(p[0]), int(p[1])] for p in padding]


def _params(x_shape, window, stride, padding, dilation):
    """window, stride, dilation, paddings and output sizes: out = floor((N + P_lo + P_hi - K_eff) / S) + 1."""
    nd = len(x_shape) - 2
    window, stride, dilation = _ints(window, nd), _ints(stride, nd), _ints(dilation, nd)
    k_eff = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    pads = _pads(padding, x_shape[1:-1], k_eff, stride)
    out = [(n + lo + hi - ke) // s + 1 for n, (lo, hi), ke, s in zip(x_shape[1:-1], pads, k_eff, stride)]
    return window, stride, dilation, pads, out


def _transpose_params(y_shape, window, stride, padding, dilation, output_padding):
    """The transposed conv's output size N, solving the conv's size rule for its input: N = (O-1)*S + K_eff -
    P_lo - P_hi + output_padding, or N = O*S for "SAME" (with the conv's "SAME" padding for N)."""
    nd = len(y_shape) - 2
    window, stride, dilation = _ints(window, nd), _ints(stride, nd), _ints(dilation, nd)
    extra = _ints(output_padding, nd)
    k_eff = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    if isinstance(padding, str) and padding.upper() == "SAME":
        out = [o * s for o, s in zip(y_shape[1:-1], stride)]
        pads = [_same(n, k, s) for n, k, s in zip(out, k_eff, stride)]
    else:
        pads = _pads(padding, y_shape[1:-1], k_eff, stride)
        out = [(o - 1) * s + ke - lo - hi + e
               for o, s, ke, (lo, hi), e in zip(y_shape[1:-1], stride, k_eff, pads, extra)]
    return window, stride, dilation, pads, out


def _pad(x, pads, value=0.0):
    return jnp.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _gather(xp, offset, stride, dilation, out):
    """xp[n, S*i + D*u, ..., c] for all output positions i at window offset u, by explicit index arrays."""
    result = xp
    for axis, (u, s, d, o) in enumerate(zip(offset, stride, dilation, out), start=1):
        index = s * np.arange(o) + d * u
        result = jnp.take(result, index, axis=axis)
    return result


def _windows(xp, window, stride, dilation, out):
    """All window entries stacked on a new last axis, in row-major window order: (N, *out, C, prod(K))."""
    offsets = itertools.product(*(range(k) for k in window))
    return jnp.stack([_gather(xp, u, stride, dilation, out) for u in offsets], axis=-1)


# ----------------------------------------------------------------------------------------------------------------
# convolution


def conv_nd(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1, padding_mode="zeros"):
    """z(n, i, j, f) = sum_{u, v, c} w(u, v, c, f) Y_pad(n, S*i + D*u, S*j + D*v, c) + b(f), group by group (in 2-D;
    i and u run over every spatial axis); Y_pad the zero padding or the literal `border_pad` in `padding_mode`."""
    window, stride, dilation, pads, out = _params(x.shape, w.shape[:-2], stride, padding, dilation)
    xp = _pad(x, pads) if padding_mode == "zeros" else border_pad(x, pads, padding_mode)
    cin_g, cout = w.shape[-2], w.shape[-1]
    cout_g = cout // groups
    outputs = []
    for group in range(groups):
        x_g = xp[..., group * cin_g:(group + 1) * cin_g]
        w_g = w[..., group * cout_g:(group + 1) * cout_g]
        z = 0.0
        for u in itertools.product(*(range(k) for k in window)):
            segment = _gather(x_g, u, stride, dilation, out)  # (N, *out, C_in/G)
            z = z + jnp.sum(segment[..., :, None] * w_g[u][None], axis=-2)
        outputs.append(z)
    z = jnp.concatenate(outputs, axis=-1)
    return z if b is None else z + b


conv1d = conv2d = conv3d = conv_nd


def conv_transpose_nd(y, w, b=None, *, stride=1, padding="VALID", dilation=1, output_padding=0,
                      padding_mode="zeros"):
    """Lecture "Expanding convolution layer": z(n, S*x + D*u, c) += w(u, c, f) y(n, x, f), then crop the padding
    (with a padding mode: fold each padded entry onto the entry it copied, the adjoint of `border_pad`)."""
    window, stride, dilation, pads, out_sizes = _transpose_params(y.shape, w.shape[:-2], stride, padding, dilation,
                                                                  output_padding)
    in_sizes = y.shape[1:-1]
    k_eff = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    full = [(o - 1) * s + ke for o, s, ke in zip(in_sizes, stride, k_eff)]
    # room for the output rows beyond the full map (they get no contribution: the rows a strided conv drops)
    size = [max(f, lo + n + hi) for f, (lo, hi), n in zip(full, pads, out_sizes)]
    z = jnp.zeros((y.shape[0], *size, w.shape[-2]), jnp.result_type(y, w))
    for u in itertools.product(*(range(k) for k in window)):
        contribution = jnp.sum(y[..., None, :] * w[u][None], axis=-1)  # (N, *in, C_out)
        index = tuple(np.ix_(*[s * np.arange(o) + d * uu for s, d, uu, o in zip(stride, dilation, u, in_sizes)]))
        z = z.at[(slice(None), *index, slice(None))].add(contribution)
    if padding_mode != "zeros":  # the adjoint of border_pad: each padded entry's value added onto its source
        z = z[(slice(None), *(slice(0, n + lo + hi) for n, (lo, hi) in zip(out_sizes, pads)), slice(None))]
        z = _fold(z, pads, out_sizes, padding_mode)
    else:
        crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, out_sizes))
        z = z[(slice(None), *crop, slice(None))]
    return z if b is None else z + b


conv_transpose1d = conv_transpose2d = conv_transpose3d = conv_transpose_nd


def conv_dx_literal(g, w, x_shape, *, stride=1, padding="VALID", dilation=1):
    """The lecture's "Overall algorithm" for dX, step by step with real zeros (groups = 1).

    1. upsample g: insert S-1 zeros between entries; 2. zero-pad by K_eff-1 on every side (plus the rows the
    forward floor dropped); 3. convolve (stride 1) with the flipped filter, in/out channels swapped; 4. crop the
    forward padding.
    """
    window, stride, dilation, pads, out = _params(x_shape, w.shape[:-2], stride, padding, dilation)
    k_eff = [d * (k - 1) + 1 for k, d in zip(window, dilation)]
    up_shape = [(o - 1) * s + 1 for o, s in zip(out, stride)]
    g_up = jnp.zeros((g.shape[0], *up_shape, g.shape[-1]), g.dtype)
    g_up = g_up.at[(slice(None), *(slice(None, None, s) for s in stride), slice(None))].set(g)  # step 1
    padded = [n + lo + hi for n, (lo, hi) in zip(x_shape[1:-1], pads)]
    dropped = [p - (u - 1 + ke) for p, u, ke in zip(padded, up_shape, k_eff)]
    g_full = _pad(g_up, [(ke - 1, ke - 1 + r) for ke, r in zip(k_eff, dropped)])  # step 2
    w_flip = jnp.flip(w, axis=tuple(range(len(window))))
    w_swap = jnp.swapaxes(w_flip, -1, -2)  # (*K, C_out, C_in)
    dx_pad = conv_nd(g_full, w_swap, dilation=dilation)  # step 3
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pads, x_shape[1:-1]))
    return dx_pad[(slice(None), *crop, slice(None))]  # step 4


# ----------------------------------------------------------------------------------------------------------------
# pooling


def _pool_params(x_shape, window, stride, padding, ceil_mode):
    """Pool geometry; with ceil_mode, PyTorch's rule: out = ceil((N + P_lo + P_hi - K) / S) + 1, less one if the
    last window would start in the high padding, and `over` = how far the last window reaches past the padding."""
    window, stride, _, pads, out = _params(x_shape, window, window if stride is None else stride, padding, 1)
    over = [0] * len(window)
    if ceil_mode:
        for a, (n, (lo, hi), k, s) in enumerate(zip(x_shape[1:-1], pads, window, stride)):
            o = int(np.ceil((n + lo + hi - k) / s)) + 1
            if (o - 1) * s >= n + lo:
                o -= 1
            out[a], over[a] = o, max(0, (o - 1) * s + k - (n + lo + hi))
    return window, stride, pads, out, over


def _pool_entries(x, window, stride, pads, out, over, value):
    full = [(lo, hi + extra) for (lo, hi), extra in zip(pads, over)]
    return _windows(_pad(x, full, value), window, stride, (1,) * len(window), out)


def _pooled(x, window, stride, padding, ceil_mode, padding_mode, value):
    """The geometry from x as given, then the window entries (N, *out, C, prod(K)) and the padding actually used:
    with a padding mode the border holds the literal `border_pad` copies (and the pool pads nothing more but a
    ceil-mode overhang), else `value` (-inf for max, 0 for mean and p-norm)."""
    window, stride, pads, out, over = _pool_params(x.shape, window, stride, padding, ceil_mode)
    if padding_mode != "zeros":
        x, pads = border_pad(x, pads, padding_mode), [(0, 0)] * len(pads)
    return window, stride, pads, out, over, x, _pool_entries(x, window, stride, pads, out, over, value)


def max_pool2d(x, window, stride=None, padding="VALID", ceil_mode=False, return_indices=False, padding_mode="zeros"):
    """Lecture: P(n, i, c) = argmax over the window (first maximum), y(n, i, c) = Y(n, P(n, i, c), c). With
    return_indices, also P as a flat index into x's channel plane (row-major), computed from the window position."""
    window, stride, pads, out, _, x, entries = _pooled(x, window, stride, padding, ceil_mode, padding_mode, -jnp.inf)
    p = jnp.argmax(entries, axis=-1)
    y = jnp.take_along_axis(entries, p[..., None], axis=-1)[..., 0]
    if not return_indices:
        return y
    offsets = np.array(list(itertools.product(*(range(k) for k in window))))  # (prod(K), nd): u of each entry
    index = 0
    for axis, (s, (lo, _), n) in enumerate(zip(stride, pads, x.shape[1:-1])):
        i = np.arange(out[axis]).reshape([-1 if a == axis else 1 for a in range(len(out))] + [1])
        index = index * n + (s * i + offsets[:, axis][p] - lo)
    return y, index


max_pool1d = max_pool3d = max_pool2d


def _counted(x_shape, window, stride, pads, out, over, count_include_pad):
    """|W| per window: ones on the counted positions (the padded input, or the real input), windowed and summed."""
    ones = jnp.ones((1, *x_shape[1:-1], 1))
    if count_include_pad:
        ones, pads = _pad(ones, pads, 1.0), [(0, 0)] * len(pads)
    return jnp.sum(_pool_entries(ones, window, stride, pads, out, over, 0.0), axis=-1)


def avg_pool2d(x, window, stride=None, padding="VALID", count_include_pad=True, ceil_mode=False, padding_mode="zeros"):
    """y = (1/|W|) sum over the window; |W| = the window's positions inside the padded input (prod(K) but for a
    ceil-mode overhang), or the number of real inputs in the window (with a padding mode, every border copy)."""
    window, stride, pads, out, over, x, entries = _pooled(x, window, stride, padding, ceil_mode, padding_mode, 0.0)
    return jnp.sum(entries, axis=-1) / _counted(x.shape, window, stride, pads, out, over, count_include_pad)


avg_pool1d = avg_pool3d = avg_pool2d


def lp_pool2d(x, p, window, stride=None, padding="VALID", ceil_mode=False, padding_mode="zeros"):
    """y = ((1/|W|) sum over the window of |x|^p)^(1/p), |W| = prod(K) (less a ceil-mode overhang)."""
    window, stride, pads, out, over, x, entries = _pooled(x, window, stride, padding, ceil_mode, padding_mode, 0.0)
    counts = _counted(x.shape, window, stride, pads, out, over, True)
    return (jnp.sum(jnp.abs(entries) ** p, axis=-1) / counts) ** (1.0 / p)


lp_pool1d = lp_pool3d = lp_pool2d


def _adaptive(x, output_size, reduce):
    """Window i of an axis of size N: [floor(i N / O), ceil((i+1) N / O)), every output position by a loop."""
    nd = x.ndim - 2
    sizes = _ints(output_size, nd)
    spans = [[(i * n // o, -(-(i + 1) * n // o)) for i in range(o)] for n, o in zip(x.shape[1:-1], sizes)]
    out = jnp.stack([reduce(x[(slice(None), *(slice(a, b) for a, b in span), slice(None))].reshape(
        x.shape[0], -1, x.shape[-1])) for span in itertools.product(*spans)], axis=1)
    return out.reshape(x.shape[0], *sizes, x.shape[-1])


def adaptive_avg_pool2d(x, output_size):
    return _adaptive(x, output_size, lambda window: jnp.mean(window, axis=1))


def adaptive_max_pool2d(x, output_size):
    """The first maximum of each window in row-major order (argmax), as for max_pool2d."""
    return _adaptive(x, output_size, lambda w: jnp.take_along_axis(w, jnp.argmax(w, axis=1)[:, None], axis=1)[:, 0])


adaptive_avg_pool1d = adaptive_avg_pool3d = adaptive_avg_pool2d
adaptive_max_pool1d = adaptive_max_pool3d = adaptive_max_pool2d


def global_avg_pool2d(x):
    """y(n, c) = (1/(H*W)) sum_{h, w} x(n, h, w, c)."""
    return jnp.sum(x, axis=tuple(range(1, x.ndim - 1))) / np.prod(x.shape[1:-1])


global_avg_pool1d = global_avg_pool3d = global_avg_pool2d


def max_unpool2d(x, indices, window, stride=None, padding=0, output_size=None):
    """y(n, q, c) = sum_i x(n, i, c) [indices(n, i, c) == q] / max(1, sum_i [indices(n, i, c) == q]): every output
    position compared with every index, values sharing one averaged (PyTorch's output size (in - 1) * S - 2P + K
    unless given)."""
    nd = x.ndim - 2
    window = _ints(window, nd)
    stride = window if stride is None else _ints(stride, nd)
    pads = _pads(padding, x.shape[1:-1], window, stride)
    sizes = (_ints(output_size, nd) if output_size is not None else
             [(i - 1) * s - lo - hi + k for i, s, (lo, hi), k in zip(x.shape[1:-1], stride, pads, window)])
    q = np.arange(int(np.prod(sizes)))
    flat_x = x.reshape(x.shape[0], -1, x.shape[-1])
    flat_i = indices.reshape(x.shape[0], -1, x.shape[-1])
    hits = flat_i[:, :, None, :] == q[None, None, :, None]                      # (N, P, Q, C)
    y = jnp.sum(jnp.where(hits, flat_x[:, :, None, :], 0.0), axis=1) / jnp.maximum(jnp.sum(hits, axis=1), 1)
    return y.reshape(x.shape[0], *sizes, x.shape[-1])


max_unpool1d = max_unpool3d = max_unpool2d


# ----------------------------------------------------------------------------------------------------------------
# padding modes: the source index of every padded entry, by its formula (PyTorch's F.pad semantics)


def _source(p, lo, n, mode):
    """The input index a padded position p copies (None: a zero)."""
    j = p - lo
    if mode == "reflect":
        j = -j if j < 0 else j
        return 2 * (n - 1) - j if j >= n else j
    if mode == "replicate":
        return min(max(j, 0), n - 1)
    if mode == "circular":
        return j % n
    return j if 0 <= j < n else None


def border_pad(x, padding, mode="reflect"):
    """y(n, p, c) = x(n, src(p), c), the source index computed entry by entry along each axis (a gather by index)."""
    nd = x.ndim - 2
    pads = _pads(padding, x.shape[1:-1], [1] * nd, [1] * nd)
    for axis, (lo, hi) in enumerate(pads, start=1):
        n = x.shape[axis]
        sources = [_source(p, lo, n, mode) for p in range(lo + n + hi)]
        taken = jnp.take(x, np.array([0 if s is None else s for s in sources], dtype=int), axis=axis)
        keep = np.array([s is not None for s in sources]).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
        x = jnp.where(keep, taken, 0.0)
    return x


def _fold(z, pads, sizes, mode):
    """The adjoint of `border_pad`: each padded entry added onto the input entry it copies (.at[].add by index)."""
    for axis, ((lo, hi), n) in enumerate(zip(pads, sizes), start=1):
        out = jnp.zeros((*z.shape[:axis], n, *z.shape[axis + 1:]), z.dtype)
        for p in range(lo + n + hi):
            src = _source(p, lo, n, mode)
            if src is not None:
                out = out.at[(slice(None),) * axis + (src,)].add(jnp.take(z, p, axis=axis))
        z = out
    return z


# ----------------------------------------------------------------------------------------------------------------
# dense, activations, loss


def dense(x, w, b=None):
    """z(..., o) = sum_i x(..., i) w(i, o) + b(o)."""
    z = jnp.sum(x[..., :, None] * w, axis=-2)
    return z if b is None else z + b


def relu(z):
    return jnp.where(z > 0, z, 0.0)


def sigmoid(z):
    return 1.0 / (1.0 + jnp.exp(-z))


def tanh(z):
    return 2.0 / (1.0 + jnp.exp(-2.0 * z)) - 1.0


def softmax(z, axis=-1):
    e = jnp.exp(z - jnp.max(z, axis=axis, keepdims=True))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(z, axis=-1):
    return jnp.log(softmax(z, axis=axis))


def softmax_cross_entropy(logits, labels):
    """L(n) = -log softmax(f(n))[y(n)]."""
    p = softmax(logits, axis=-1)
    return -jnp.log(jnp.take_along_axis(p, labels[..., None], axis=-1)[..., 0])


# ----------------------------------------------------------------------------------------------------------------
# normalisation: the formulas of docs/primitives.md ("Normalisation"), literally (mean, then the mean squared deviation)


def _normalise(x, axes, scale, bias, epsilon):
    mu = jnp.mean(x, axes, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axes, keepdims=True)
    return (x - mu) / jnp.sqrt(var + epsilon)


def batch_norm(x, scale=None, bias=None, epsilon=1e-5):
    """y(n, s, c) = scale(c) (x - mu(c)) / sqrt(var(c) + eps) + bias(c), mu and var over every n and s."""
    y = _normalise(x, tuple(range(x.ndim - 1)), scale, bias, epsilon)
    return y * (1.0 if scale is None else scale) + (0.0 if bias is None else bias)


def layer_norm(x, scale=None, bias=None, epsilon=1e-5):
    """Each example normalised over all of its positions and channels, then scale(c), bias(c)."""
    y = _normalise(x, tuple(range(1, x.ndim)), scale, bias, epsilon)
    return y * (1.0 if scale is None else scale) + (0.0 if bias is None else bias)


def group_norm(x, groups, scale=None, bias=None, epsilon=1e-5):
    """Each example's channel group g (channels g*C/G .. (g+1)*C/G - 1) normalised over its positions and channels."""
    c = x.shape[-1] // groups
    parts = [_normalise(x[..., k * c:(k + 1) * c], tuple(range(1, x.ndim)), None, None, epsilon)
             for k in range(groups)]
    y = jnp.concatenate(parts, axis=-1)
    return y * (1.0 if scale is None else scale) + (0.0 if bias is None else bias)

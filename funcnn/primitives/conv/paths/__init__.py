"""The convolution algorithms, one module each, every one exposing the same three functions:

    conv(x, w, spec)              z[n, i, f] = sum_{u, c} x_pad[n, S*i + D*u, c] w[u, c, f]
    dx(g, w, spec, in_sizes)      dX[n, y, c] = sum_{f, i} g_up[n, i, f] w[y - i, c, f]
    dw(x, g, spec, w_shape)       dW[u, c, f] = sum_{n, i} g[n, i, f] x_pad[n, S*i + D*u, c]

`canonical` is the lecture's steps on XLA's convolution; `taps`, `banded`, `tap_matmuls` and `batch_chunks` exist
because they measured faster on CPU for some shapes (each module's docstring says where and why). Which one runs is
`..dispatch.TABLE`.
"""

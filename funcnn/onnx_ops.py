"""funcnn's ops in jax2onnx, for the ones whose lax form jax2onnx does not convert to an ONNX graph onnxruntime runs.

`funcnn.deploy.export_onnx` converts a model's lax view (`funcnn.as_lax`) with jax2onnx, except the ops named in
`KEPT`, which stay funcnn equations and are lowered by the plugins here:

    funcnn.max_pool   jax2onnx lowers lax's reduce_window_max over (N, *spatial, C) to one MaxPool whose kernel
                      spans every axis (rank 4 for a 2-D pool); onnxruntime runs kernels of rank 1 to 3 only
                      ("Unsupported pooling size"). Here: Transpose to (N, C, *spatial), MaxPool over the spatial
                      axes with the op's explicit pads (ONNX pads a max pool with -inf, as funcnn does), Transpose
                      back.

Importing this module registers the plugins with jax2onnx (an optional dependency: `pip install 'funcnn[onnx]'`);
it uses jax2onnx's plugin interface (`register_primitive`, a `lower(ctx, eqn)` building onnx_ir nodes), the one
jax2onnx's own plugins use, tested with the jax2onnx versions the `onnx` extra pins.
"""

from __future__ import annotations

from jax2onnx.plugins._ir_shapes import (_dim_label_from_value_or_aval, _ensure_value_metadata,
                                         _stamp_type_and_shape, _to_ir_dim_for_shape)
from jax2onnx.plugins.plugin_system import PrimitiveLeafPlugin, register_primitive

from .primitives.carrier import NAMESPACE

KEPT = ("max_pool",)  # the ops export_onnx leaves to the plugins below


def _stamped(ctx, out, like, dims):
    """A new node's value with `like`'s element type and the shape `dims` (ints, or symbolic labels) stamped."""
    out.type = like.type
    _stamp_type_and_shape(out, tuple(_to_ir_dim_for_shape(d) for d in dims))
    _ensure_value_metadata(ctx, out)
    return out


def _transposed(ctx, value, perm, dims, name):
    """value transposed by perm into the value called `name`, of shape `dims`."""
    return _stamped(ctx, ctx.builder.Transpose(value, _outputs=[name], perm=tuple(perm)), value, dims)


@register_primitive(jaxpr_primitive=NAMESPACE + "max_pool", onnx=[{"component": "MaxPool"}], since="funcnn 0.1",
                    context="primitives.funcnn", component="max_pool")
class MaxPoolPlugin(PrimitiveLeafPlugin):
    """funcnn.max_pool[window, stride, padding] on (N, *spatial, C) -> Transpose, MaxPool, Transpose."""

    def lower(self, ctx, eqn) -> None:
        (x_var,), (y_var,) = eqn.invars, eqn.outvars
        window, stride, padding = eqn.params["window"], eqn.params["stride"], eqn.params["padding"]
        x = ctx.get_value_for_var(x_var, name_hint=ctx.fresh_name("max_pool_in"))
        y_spec = ctx.get_value_for_var(y_var, name_hint=ctx.fresh_name("max_pool_out"))
        x_shape, y_shape = tuple(x_var.aval.shape), tuple(y_var.aval.shape)
        rank = len(x_shape)
        to_channels_first = (0, rank - 1, *range(1, rank - 1))
        back = tuple(to_channels_first.index(i) for i in range(rank))
        label = lambda i: _dim_label_from_value_or_aval(x, x_shape, i)  # noqa: E731 - keeps a symbolic batch's name
        batch, channels = label(0), label(rank - 1)

        nchw = _transposed(ctx, x, to_channels_first, (batch, channels, *x_shape[1:-1]),
                           ctx.fresh_name("max_pool_nchw"))
        pooled = _stamped(ctx, ctx.builder.MaxPool(
            nchw, _outputs=[ctx.fresh_name("max_pool")], kernel_shape=tuple(int(k) for k in window),
            strides=tuple(int(s) for s in stride),
            pads=tuple(int(lo) for lo, _ in padding) + tuple(int(hi) for _, hi in padding)),
            nchw, (batch, channels, *y_shape[1:-1]))
        out = _transposed(ctx, pooled, back, (batch, *y_shape[1:-1], channels),
                          getattr(y_spec, "name", None) or ctx.fresh_name("max_pool_nhwc"))
        ctx.bind_value_for_var(y_var, out)


__all__ = ["KEPT", "MaxPoolPlugin"]

"""The pooling configurations `python -m funcnn.verify` checks: tiling and overlapping windows, paddings, ceil mode,
adaptive sizes and ties, in one, two and three spatial axes; padding modes; max unpooling."""

from __future__ import annotations

from .. import pool
from ..cases import cases_for


@cases_for("max_pool2d", "avg_pool2d", "lp_pool2d", "global_avg_pool2d", "max_pool1d", "avg_pool1d",
                "lp_pool1d", "global_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool1d",
                "adaptive_max_pool1d", "max_pool3d", "avg_pool3d", "lp_pool3d", "global_avg_pool3d",
                "adaptive_avg_pool3d", "adaptive_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d")
def pool_cases(make, ref):
    def case(name, shape, *args, quick=False, x=None, indices=None, **kw):
        prim, refn = getattr(pool, name), getattr(ref, name)
        x = make.normal(*shape) if x is None else x
        fixed = () if indices is None else (indices,)  # max unpooling: the indices are a constant of the case
        return make.case(name, f"{tuple(shape)} {args} {kw}", lambda x: prim(x, *fixed, *args, **kw),
                         lambda x: refn(x, *fixed, *args, **kw), x, quick=quick)

    yield case("max_pool1d", (2, 9, 3), 3, 2, quick=True)  # first: the family's structural checks run on it
    configs = [((3, 2), dict(padding=1)), (((2, 3), (1, 2)), dict(padding=((1, 0), (0, 2)))), ((2,), {}),
               ((3, 2), {}), ((3, 1), {}), ((3, 3), dict(padding="SAME"))]
    for i, (args, kw) in enumerate(configs):
        quick = i == 0
        yield case("max_pool2d", (2, 7, 8, 3), *args, quick=quick, **kw)
        yield case("avg_pool2d", (2, 7, 8, 3), *args, quick=quick, **kw)
        if "padding" in kw:
            yield case("avg_pool2d", (2, 7, 8, 3), *args, quick=quick, count_include_pad=False, **kw)
        for p in (1.0, 2.0, 5.0):
            yield case("lp_pool2d", (2, 7, 8, 3), p, *args, quick=quick and p == 2.0, **kw)
    ties = make.integers(0, 3, 2, 6, 6, 2).astype(float)  # ties everywhere: the first maximum takes g
    yield case("max_pool2d", (2, 6, 6, 2), 3, 1, quick=True, x=ties)
    yield case("avg_pool1d", (2, 9, 3), 3, 2, quick=True, padding=1)
    yield case("lp_pool1d", (2, 9, 3), 3.0, 3, 2, quick=True)
    yield case("global_avg_pool2d", (3, 5, 4, 2), quick=True)
    yield case("global_avg_pool1d", (3, 5, 2), quick=True)
    for i, (args, kw) in enumerate([((3, 2), dict(padding=1)), ((2, 3), {})]):  # ceil mode: overhanging windows
        yield case("max_pool2d", (2, 7, 8, 3), *args, quick=i == 0, ceil_mode=True, **kw)
        yield case("avg_pool2d", (2, 7, 8, 3), *args, quick=i == 0, ceil_mode=True, **kw)
        yield case("avg_pool2d", (2, 7, 8, 3), *args, ceil_mode=True, count_include_pad=False, **kw)
        yield case("lp_pool2d", (2, 7, 8, 3), 3.0, *args, quick=i == 0, ceil_mode=True, **kw)
    for i, size in enumerate([(3, 4), (1, 1), (7, 8), (9, 5)]):  # overlapping, global, identity, larger than x
        yield case("adaptive_avg_pool2d", (2, 7, 8, 3), size, quick=i == 0)
        yield case("adaptive_max_pool2d", (2, 7, 8, 3), size, quick=i == 0)
    yield case("adaptive_max_pool2d", (2, 6, 6, 2), (4, 4), x=make.integers(0, 3, 2, 6, 6, 2).astype(float))  # ties
    yield case("adaptive_avg_pool1d", (2, 9, 3), 4, quick=True)
    yield case("adaptive_max_pool1d", (2, 9, 3), 4, quick=True)


    yield from _volume_cases(case, make)
    yield from _mode_and_unpool_cases(case, make, pool)


def _volume_cases(case, make):
    """volumes (N, D, H, W, C): overlapping and tiling windows, asymmetric padding, ceil mode, ties"""
    vol = (1, 4, 4, 5, 2)
    for i, (args, kw) in enumerate([((2,), {}), ((3, 2), dict(padding=1)),
                                    (((2, 3, 2), (1, 2, 3)), dict(padding=((1, 0), (0, 1), (1, 1)), ceil_mode=True))]):
        yield case("max_pool3d", vol, *args, quick=i == 1, **kw)
        yield case("avg_pool3d", vol, *args, quick=i == 1, **kw)
        yield case("lp_pool3d", vol, 2.0, *args, quick=i == 1, **kw)
    yield case("avg_pool3d", vol, 3, 2, padding=1, count_include_pad=False)
    yield case("max_pool3d", (1, 3, 4, 4, 2), 2, 1, x=make.integers(0, 3, 1, 3, 4, 4, 2).astype(float))  # ties
    yield case("global_avg_pool3d", vol, quick=True)
    yield case("adaptive_avg_pool3d", vol, (2, 3, 4), quick=True)
    yield case("adaptive_max_pool3d", vol, (2, 3, 4), quick=True)


def _mode_and_unpool_cases(case, make, pool):
    """padding modes (the border filled from x, the backward folding it back), and max unpooling"""
    vol = (1, 4, 4, 5, 2)
    for i, mode in enumerate(("reflect", "replicate", "circular")):
        yield case("max_pool2d", (2, 7, 8, 3), 3, 2, quick=i == 0, padding=((1, 2), (2, 1)), padding_mode=mode)
        yield case("avg_pool2d", (2, 7, 8, 3), 3, 2, quick=i == 2, padding=1, ceil_mode=True, padding_mode=mode)
        yield case("lp_pool3d", vol, 3.0, 3, 2, padding=1, padding_mode=mode)
        yield case("max_pool1d", (2, 9, 3), 3, 2, padding=2, padding_mode=mode)

    # max unpooling at the indices of a max pool (linear in x; tiling windows: distinct indices)
    for nd, shape, window, kw in [(1, (2, 9, 3), 3, {}), (2, (2, 7, 8, 3), 2, dict(output_size=(7, 9))),
                                  (3, vol, (2, 2, 3), dict(padding=(1, 0, 1), output_size=vol[1:-1]))]:
        source = make.normal(*shape)
        pooled, indices = getattr(pool, f"max_pool{nd}d")(source, window, padding=kw.get("padding", 0),
                                                          return_indices=True)
        name = f"max_unpool{nd}d"
        yield case(name, pooled.shape, window, quick=True, x=pooled, indices=indices, **kw)
    # overlapping windows (3x3, stride 2, padding 1): one maximum is named by several windows; the copies average
    # forward and share g backward, so the adjoint identity holds with repeated indices too
    pooled, indices = pool.max_pool2d(make.normal(2, 9, 8, 3), 3, 2, padding=1, return_indices=True)
    yield case("max_unpool2d", pooled.shape, 3, 2, quick=True, x=pooled, indices=indices, padding=1,
               output_size=(9, 8))

"""Parity of array manipulation, reduction, Interpolate, Affine and Embed against nnabla."""
import numpy as np
import pytest

from tests.parity.oracle import check_parity_variable_batch

pytestmark = pytest.mark.nnabla


def _F():
    import nnabla.functions as F

    return F


# Layers that act on the batch axis of an input nnabla saved with a literal batch size: the exporter
# now treats that dimension as the (symbolic) batch and checks the file's declared output shapes
# (written at the file's batch size) against shapes inferred at batch 1, and refuses the file.


@pytest.mark.parametrize("shape,target", [
    ((2, 3, 4), (2, 12)), ((2, 3, 4), (2, -1, 2)),
    ((2, 3, 4), (-1, 4)), ((2, 3, 4), (6, 4)),
    ((3, 2, 2), (3, 4, 1, 1)),
])
def test_reshape(tmp_path, shape, target):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: F.reshape(x, target), [shape], batch_independent=target[0] == shape[0])


@pytest.mark.parametrize("opset", [None, 13])
def test_transpose_concat_stack_split(tmp_path, opset):
    F = _F()

    def build(a, b):
        t = F.transpose(a, (0, 2, 1))
        c = F.concatenate(t, b, axis=1)
        s = F.stack(a, F.transpose(t, (0, 2, 1)), axis=1)
        parts = F.split(c, axis=2)
        return c, s, parts[0], parts[-1], F.concatenate(a, a)

    check_parity_variable_batch(tmp_path, build, [(2, 3, 4), (2, 2, 3)], opset=opset)


@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("axis", [1, 2, 3])
def test_split_and_stack_along_each_axis(tmp_path, axis, opset):
    """Inner axes take the merged-axes lowering (one Reshape, no Squeeze/Unsqueeze per part), the last
    the per-part one; stacking along a new last axis also takes the per-part one."""
    F = _F()

    def build(x):
        parts = F.split(x, axis=axis)
        return parts[0], parts[-1], F.stack(*parts, axis=axis), F.stack(*parts, axis=3)

    check_parity_variable_batch(tmp_path, build, [(2, 3, 4, 5)], opset=opset)


def test_split_and_stack_with_the_batch_in_a_later_dimension(tmp_path):
    """After a transpose the batch is dimension 1: stacking and splitting at axis 1 must still follow
    the batch, not the batch size the file was exported at."""
    F = _F()

    def build(x):
        t = F.transpose(x, (1, 0, 2))  # (3, batch, 4)
        stacked = F.stack(t, t * 2.0, axis=1)  # (3, 2, batch, 4)
        first, second = F.split(stacked, axis=1)
        return F.transpose(stacked, (2, 0, 1, 3)), F.transpose(second - first, (1, 0, 2))

    check_parity_variable_batch(tmp_path, build, [(2, 3, 4)])


@pytest.mark.parametrize("start,stop,step", [
    ((0, 1), (3, 4), (1, 2)), ((2, 3), (0, 0), (-1, -1)), ((None, None), (None, None), (-1, -2)),
    ((-1,), (-6,), (-2,)), ((1, -3), (3, -1), (1, 1)), ((0, 0, 0), (2, 3, 5), (1, 1, 1)), ((3,), (1,), (1,)),
])
def test_slice(tmp_path, start, stop, step):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: F.slice(x, start, stop, step), [(2, 3, 5)])


def test_slice_python_indexing(tmp_path):
    check_parity_variable_batch(tmp_path, lambda x: (x[:, ::-1, 1:], x[..., ::-2], x[:, 1]), [(2, 3, 5)])


@pytest.mark.parametrize("mode", ["constant", "reflect", "repeat"])
@pytest.mark.parametrize("width", [(1, 2), (0, 1, 2, 1), (0, 0, 1, 1, 2, 0),
                                   (1, 0, 1, 1, 2, 0)])
def test_pad(tmp_path, mode, width):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: F.pad(x, width, mode=mode, constant_value=0.5), [(2, 3, 4)],
            batch_independent=len(width) < 6)


def test_broadcast_tile_flip(tmp_path):
    F = _F()

    def build(x, y):
        return (F.broadcast(x, (2, 3, 4)), F.broadcast_to(F.broadcast(x, (2, 3, 4)), F.reshape(y, (3,)), 1),
                F.tile(x, (2, 1, 3)), F.tile(x, (2, 1, 1, 2)), F.tile(x, (2,)), F.flip(x), F.flip(x, (1, 2)))

    check_parity_variable_batch(tmp_path, build, [(2, 3, 1), (1, 3)], batch_independent=False)


def test_broadcast_to_axes(tmp_path):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: (F.broadcast_to(x, F.reshape(F.sum(x, (0, 2)), (3,)), 1),
                                 F.broadcast_to(x, F.sum(x, 0)), F.broadcast_to(x, F.sum(x, (0, 1)))), [(2, 3, 4)],
            batch_independent=False)


@pytest.mark.parametrize("shifts,mode", [((1,), "nearest"), ((0, -2, 1), "nearest"), ((1, 2), "reflect"),
                                         ((-3, 5), "reflect")])
def test_shift(tmp_path, shifts, mode):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: F.shift(x, shifts, border_mode=mode), [(2, 3, 4)])


@pytest.mark.parametrize("kw", [{}, {"reverse": True}, {"axis": 1, "with_index": True},
                                {"axis": 1, "reverse": True, "only_index": True}])
def test_sort(tmp_path, kw):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: F.sort(x, **kw), [(2, 3, 4)])


def test_gather_embed_one_hot(tmp_path):
    import nnabla as nn
    import nnabla.parametric_functions as PF

    F = _F()
    rng = np.random.RandomState(0)
    x = rng.randn(2, 5, 3).astype(np.float32)
    idx = rng.randint(0, 5, size=(2, 4)).astype(np.float32)
    labels = rng.randint(-1, 6, size=(2, 4, 1)).astype(np.float32)
    pairs = np.stack([rng.randint(-3, 3, size=(2, 4)), rng.randint(0, 4, size=(2, 4))], -1).astype(np.float32)

    def build(xv, iv, lv, pv):
        gather_idx = nn.parameter.get_parameter_or_create("gather_idx", (6,), need_grad=False)
        gather_last = nn.parameter.get_parameter_or_create("gather_last", (2, 2), need_grad=False)
        return (F.gather(xv, gather_idx, axis=1), F.gather(xv, gather_last, axis=-1),
                PF.embed(iv, 5, 3), F.one_hot(lv, (5,)), F.one_hot(pv, (3, 4)))

    def init(params):
        for name, p in params.items():
            if name.endswith("gather_idx"):
                p.d = np.array([4, 0, 2, 2, 1, 3], np.float32)
            if name.endswith("gather_last"):
                p.d = np.array([[2, 0], [1, 1]], np.float32)

    check_parity_variable_batch(tmp_path, build, [], inputs=[x, idx, labels, pairs], param_init=init)


def test_gather_nd(tmp_path):
    F = _F()
    rng = np.random.RandomState(1)
    x = rng.randn(3, 4, 2).astype(np.float32)
    indices = np.stack([rng.randint(0, 3, size=(5,)), rng.randint(0, 4, size=(5,))]).astype(np.float32)
    check_parity_variable_batch(tmp_path, lambda a, i: F.gather_nd(a, i), [], inputs=[x, indices], batch_independent=False)


def test_matrix_diag_trilu(tmp_path):
    F = _F()
    def build(x):
        square = F.tile(F.matrix_diag(x), (1, 1, 1, 1))
        return (F.matrix_diag(x), F.matrix_diag_part(square), F.trilu(square, 1, True), F.trilu(square, -1, False),
                F.trilu(F.reshape(x, (2, 4, 3)), 0, False))

    check_parity_variable_batch(tmp_path, build, [(2, 3, 4)])


@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("axis,keep", [(None, False), (1, True), ((1, 2), False), ((0, 2), True), (-1, False)])
def test_reductions(tmp_path, opset, axis, keep):
    F = _F()

    def build(x):
        return (F.sum(x, axis, keepdims=keep), F.mean(x, axis, keepdims=keep), F.max(x, axis, keepdims=keep),
                F.min(x, axis, keepdims=keep), F.prod(x, axis, keepdims=keep),
                F.norm(x, 2, axis, keepdims=keep), F.norm(x, 1, axis, keepdims=keep), F.norm(x, 3, axis, keepdims=keep))

    check_parity_variable_batch(tmp_path, build, [(2, 3, 4)], opset=opset, batch_independent=axis not in (None, (0, 2)))


@pytest.mark.parametrize("axis,keep", [(1, False), (2, True), ((1, 2), False), ((1, 2), True)])
def test_max_min_index(tmp_path, axis, keep):
    F = _F()

    def build(x):
        m, i = F.max(x, axis, keepdims=keep, with_index=True)
        return (m, i, F.min(x, axis, keepdims=keep, only_index=True), F.max(x, axis, keepdims=keep, only_index=True))

    check_parity_variable_batch(tmp_path, build, [(2, 3, 4)])


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [1, 2])
def test_cumsum_cumprod(tmp_path, exclusive, reverse, axis):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: (F.cumsum(x, axis, exclusive, reverse), F.cumprod(x, axis, exclusive, reverse)),
            [(2, 3, 4)])


_INTERP = [
    ("linear", {"align_corners": True}), ("linear", {"align_corners": False}),
    ("linear", {"align_corners": False, "half_pixel": True}),
    ("nearest", {"align_corners": False}), ("nearest", {"align_corners": True}),
    ("nearest", {"align_corners": False, "half_pixel": True}),
    ("nearest", {"half_pixel_for_nn": True}), ("nearest", {"half_pixel_for_nn": True, "align_corners": True}),
]


@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("mode,kw", _INTERP)
@pytest.mark.parametrize("shape,size", [((2, 3, 4, 5), (7, 3)), ((2, 3, 6, 4), (3, 8)), ((2, 2, 4), (9,)),
                                        ((2, 2, 4), (1,)), ((1, 2, 3, 4, 2), (5, 2, 3))])
def test_interpolate(tmp_path, opset, mode, kw, shape, size):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: F.interpolate(x, output_size=size, mode=mode, **kw), [shape], opset=opset)


# nnabla's saver folds the leading dimensions of base_axis > 1 into the batch (it writes base_axis=1
# and a (-1, ...) input), so only base_axis=1 reaches a file from here.
@pytest.mark.parametrize("base_axis,outs,bias", [(1, (5,), True), (1, (3, 2), False), (1, (2, 3), True),
                                                 (1, (4,), False)])
def test_affine(tmp_path, base_axis, outs, bias):
    import nnabla.parametric_functions as PF

    check_parity_variable_batch(tmp_path, lambda x: PF.affine(x, outs, base_axis=base_axis, with_bias=bias), [(2, 3, 4)])


@pytest.mark.parametrize("ij", [False, True])
def test_meshgrid(tmp_path, ij):
    import nnabla as nn

    F = _F()

    def build(x):
        axes = [nn.parameter.get_parameter_or_create(f"m{i}", (n,)) for i, n in enumerate((2, 3, 4))]
        return (*F.meshgrid(*axes, ij_indexing=ij), F.sum(x, 1))

    check_parity_variable_batch(tmp_path, build, [(2, 3)], batch_independent=False)


def test_broadcast_keeps_batch_symbolic(tmp_path):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: (F.broadcast(x, (2, 3, 4)), F.tile(x, (1, 2, 3))),
            [(2, 3, 1)])


@pytest.mark.parametrize("written,expected_tail", [((4, 12), (12,)), ((4, 2, -1), (2, 6)), ((8, 6), None)])
def test_reshape_with_console_batch_in_target(tmp_path, written, expected_tail):
    """Console writes the batch size (here 4) into reshape_param.shape while the input's batch is -1;
    the converted graph must still follow the batch it is run with (numpy reshape is the reference)."""
    import zipfile

    import nncbridge
    from tests.parity.oracle import run_onnx

    F = _F()
    path = check_parity_variable_batch(tmp_path, lambda x: F.reshape(x, (2, 12)), [(2, 3, 4)])
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    text = files["network.nntxt"].decode().replace("batch_size: 2", "batch_size: 4")  # Console: same batch
    old = "reshape_param {\n      shape {\n        dim: -1\n        dim: 12\n      }"
    assert old in text
    dims = "".join(f"        dim: {d}\n" for d in written)
    text = text.replace(old, "reshape_param {\n      shape {\n" + dims + "      }")
    declared = "name: \"y0\"\n    type: \"Buffer\"\n    shape {\n      dim: -1\n      dim: 12\n    }"
    assert declared in text
    tail = expected_tail or (-1, 6)
    y0_dims = "".join(f"      dim: {d}\n" for d in (-1,) + tuple(tail) if expected_tail) if expected_tail else \
        "      dim: -1\n      dim: 6\n"
    text = text.replace(declared, "name: \"y0\"\n    type: \"Buffer\"\n    shape {\n" + y0_dims + "    }")
    files["network.nntxt"] = text.encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    proto = nncbridge.to_onnx(path)
    for batch in (1, 3):
        x = np.arange(batch * 12, dtype=np.float32).reshape(batch, 3, 4)
        y = run_onnx(proto, {"x0": x})[0]
        want = x.reshape(-1, 6) if expected_tail is None else x.reshape((batch,) + expected_tail)
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("mode,kw", [("linear", {"align_corners": True}), ("linear", {"half_pixel": True}),
                                     ("nearest", {"half_pixel_for_nn": True})])
def test_interpolate_channel_last(tmp_path, mode, kw):
    """nnabla's CPU forward has no channel_last Interpolate: the reference is nnabla's channel-first
    result on the transposed input."""
    import nnabla as nn
    from nnabla.utils.save import save

    import nncbridge
    from tests.parity.oracle import assert_close, run_onnx

    F = _F()
    data = np.random.RandomState(2).uniform(-2, 2, (2, 4, 5, 3)).astype(np.float32)
    x_first = nn.Variable((2, 3, 4, 5))
    x_first.d = data.transpose(0, 3, 1, 2)
    y_first = F.interpolate(x_first, output_size=(7, 3), mode=mode, **kw)
    y_first.forward()
    ref = np.array(y_first.d).transpose(0, 2, 3, 1)

    x = nn.Variable(data.shape)
    y = F.interpolate(x, output_size=(7, 3), mode=mode, channel_last=True, **kw)
    path = tmp_path / "cl.nnp"
    save(str(path), {"networks": [{"name": "net", "batch_size": 2, "outputs": {"y": y}, "names": {"x": x}}],
                     "executors": [{"name": "runtime", "network": "net", "data": ["x"], "output": ["y"]}]})
    got = run_onnx(nncbridge.to_onnx(path), {"x": data})[0]
    assert_close(got, ref, what="interpolate channel_last")


def test_tile_flip(tmp_path):
    F = _F()
    check_parity_variable_batch(tmp_path, lambda x: (F.tile(x, (1, 2, 3)), F.tile(x, (2,)), F.flip(x), F.flip(x, (1, 2))), [(2, 3, 1)])


def test_shape_bool_fill_det(tmp_path):
    F = _F()
    rng = np.random.RandomState(3)
    x = rng.uniform(-2, 2, (2, 3, 3)).astype(np.float32)
    mask = (rng.uniform(0, 1, (2, 3, 3)) > 0.5).astype(np.float32)

    def build(xv, mv):
        return (F.shape(xv), F.shape(xv, 1), F.shape(xv, -2, -1), F.bool_fill(xv, mv, 2.5), F.batch_det(xv),
                F.batch_logdet(xv))

    check_parity_variable_batch(tmp_path, build, [], inputs=[x, mask], batch_independent=False)


@pytest.mark.parametrize("add", [False, True])
def test_scatter_nd_scatter_add(tmp_path, add):
    import nnabla as nn

    F = _F()

    def build(x, x1):
        idx = nn.parameter.get_parameter_or_create("idx", (2, 5), need_grad=False)
        sidx = nn.parameter.get_parameter_or_create("sidx", (2, 2, 4), need_grad=False)
        return F.scatter_nd(F.sum(x, axis=0), idx, shape=(3, 4), add=add), F.scatter_add(x1, sidx, x1, axis=1)

    def init(params):
        for name, p in params.items():
            if name.endswith("/idx"):
                rows, cols = ([0, 2, 1, 2, 0], [3, 0, 1, 0, 3]) if add else ([0, 2, 1, 2, 0], [3, 0, 1, 2, 0])
                p.d = np.array([rows, cols], np.float32)
            if name.endswith("/sidx"):
                p.d = np.random.RandomState(4).randint(0, 3, p.shape).astype(np.float32)

    check_parity_variable_batch(tmp_path, build, [(2, 5), (2, 3, 4)], param_init=init, batch_independent=False)

"""Parity of the element-wise families (activations, arithmetic, logical, math) against nnabla.

Tests marked ``nnabla`` use nnabla as the oracle; the rest (runnable anywhere) check a few
composite lowerings against nnabla's documented formulas written in numpy, at the newest and
the oldest supported opset.
"""
import numpy as np
import pytest

nnabla = pytest.mark.nnabla

X = [(2, 3, 4)]
XX = [(2, 3, 4), (2, 3, 4)]
XB = [(2, 3, 4), (2, 1, 4)]  # nnabla broadcasts equal-rank inputs over size-1 dimensions


def F():
    import nnabla.functions as F

    return F


# (id, build, input shapes, input range)
UNARY = [
    ("sigmoid", lambda x: F().sigmoid(x), X, (-4, 4)),
    ("swish", lambda x: F().swish(x), X, (-4, 4)),
    ("tanh", lambda x: F().tanh(x), X, (-3, 3)),
    ("relu", lambda x: F().relu(x), X, (-2, 2)),
    ("relu_inplace", lambda x: F().relu(x * 1.0, inplace=True), X, (-2, 2)),
    ("leaky_relu", lambda x: F().leaky_relu(x), X, (-2, 2)),
    ("leaky_relu_alpha", lambda x: F().leaky_relu(x, alpha=0.3), X, (-2, 2)),
    ("softmax", lambda x: F().softmax(x), X, (-3, 3)),
    ("softmax_axis1", lambda x: F().softmax(x, axis=1), X, (-3, 3)),
    ("log_softmax", lambda x: F().log_softmax(x), X, (-3, 3)),
    ("log_softmax_axis_neg", lambda x: F().log_softmax(x, axis=-2), X, (-3, 3)),
    ("elu", lambda x: F().elu(x), X, (-3, 3)),
    ("elu_alpha", lambda x: F().elu(x, alpha=0.5), X, (-3, 3)),
    ("selu", lambda x: F().selu(x), X, (-3, 3)),
    ("selu_args", lambda x: F().selu(x, scale=1.5, alpha=2.0), X, (-3, 3)),
    ("crelu", lambda x: F().crelu(x), X, (-2, 2)),
    ("crelu_axis2", lambda x: F().crelu(x, axis=2), X, (-2, 2)),
    ("celu", lambda x: F().celu(x), X, (-2, 2)),
    ("celu_alpha_axis", lambda x: F().celu(x, alpha=0.7, axis=-1), X, (-2, 2)),
    ("gelu", lambda x: F().gelu(x), X, (-4, 4)),
    ("mish", lambda x: F().mish(x), X, (-4, 4)),
    ("relu6", lambda x: F().relu6(x), X, (-3, 9)),
    ("hard_sigmoid", lambda x: F().hard_sigmoid(x), X, (-4, 4)),
    ("hard_tanh", lambda x: F().hard_tanh(x), X, (-3, 3)),
    ("log_sigmoid", lambda x: F().log_sigmoid(x), X, (-30, 30)),
    ("softplus", lambda x: F().softplus(x), X, (-30, 30)),
    ("softplus_beta", lambda x: F().softplus(x, beta=2.5), X, (-10, 10)),
    ("softsign", lambda x: F().softsign(x), X, (-3, 3)),
    ("tanh_shrink", lambda x: F().tanh_shrink(x), X, (-3, 3)),
    ("sinc", lambda x: F().sinc(x), X, (-6, 6)),
    # arithmetic with scalars
    ("add_scalar", lambda x: F().add_scalar(x, 1.5), X, (-2, 2)),
    ("mul_scalar", lambda x: F().mul_scalar(x, -2.5), X, (-2, 2)),
    ("pow_scalar_int", lambda x: F().pow_scalar(x, 3.0), X, (-2, 2)),
    ("pow_scalar_sqrt", lambda x: F().pow_scalar(x, 0.5), X, (0.1, 4)),  # fractional power: positive base
    ("pow_scalar_frac", lambda x: F().pow_scalar(x, 1.7), X, (0.1, 4)),  # fractional power: positive base
    ("r_sub_scalar", lambda x: F().r_sub_scalar(x, 3.0), X, (-2, 2)),
    ("r_div_scalar", lambda x: F().r_div_scalar(x, 2.0), X, (0.5, 3)),  # keep away from 0
    ("r_pow_scalar", lambda x: F().r_pow_scalar(x, 2.0), X, (-3, 3)),
    # logical / comparison with scalars
    ("sign", lambda x: F().sign(F().round(x)), X, (-2, 2)),  # rounding produces exact zeros
    ("sign_alpha", lambda x: F().sign(F().round(x), alpha=0.25), X, (-2, 2)),
    ("minimum_scalar", lambda x: F().minimum_scalar(x, 0.3), X, (-2, 2)),
    ("maximum_scalar", lambda x: F().maximum_scalar(x, -0.3), X, (-2, 2)),
    ("logical_and_scalar", lambda x: F().logical_and_scalar(F().round(x), True), X, (-1, 1)),
    ("logical_and_scalar_false", lambda x: F().logical_and_scalar(F().round(x), False), X, (-1, 1)),
    ("logical_or_scalar", lambda x: F().logical_or_scalar(F().round(x), False), X, (-1, 1)),
    ("logical_xor_scalar", lambda x: F().logical_xor_scalar(F().round(x), True), X, (-1, 1)),
    ("equal_scalar", lambda x: F().equal_scalar(F().round(x), 1.0), X, (-2, 2)),
    ("not_equal_scalar", lambda x: F().not_equal_scalar(F().round(x), 1.0), X, (-2, 2)),
    ("greater_equal_scalar", lambda x: F().greater_equal_scalar(F().round(x), 0.0), X, (-2, 2)),
    ("greater_scalar", lambda x: F().greater_scalar(F().round(x), 0.0), X, (-2, 2)),
    ("less_equal_scalar", lambda x: F().less_equal_scalar(F().round(x), 0.0), X, (-2, 2)),
    ("less_scalar", lambda x: F().less_scalar(F().round(x), 0.0), X, (-2, 2)),
    ("logical_not", lambda x: F().logical_not(F().round(x)), X, (-1, 1)),
    # math
    ("abs", lambda x: F().abs(x), X, (-2, 2)),
    ("exp", lambda x: F().exp(x), X, (-3, 3)),
    ("log", lambda x: F().log(x), X, (0.1, 5)),  # log needs positive input
    ("identity", lambda x: F().identity(x), X, (-2, 2)),
    ("round", lambda x: F().round(x), X, (-3, 3)),
    ("ceil", lambda x: F().ceil(x), X, (-3, 3)),
    ("floor", lambda x: F().floor(x), X, (-3, 3)),
    ("sin", lambda x: F().sin(x), X, (-4, 4)),
    ("cos", lambda x: F().cos(x), X, (-4, 4)),
    ("tan", lambda x: F().tan(x), X, (-1.4, 1.4)),  # stay inside (-pi/2, pi/2)
    ("sinh", lambda x: F().sinh(x), X, (-3, 3)),
    ("cosh", lambda x: F().cosh(x), X, (-3, 3)),
    ("asin", lambda x: F().asin(x), X, (-0.99, 0.99)),  # domain [-1, 1]
    ("acos", lambda x: F().acos(x), X, (-0.99, 0.99)),  # domain [-1, 1]
    ("atan", lambda x: F().atan(x), X, (-5, 5)),
    ("asinh", lambda x: F().asinh(x), X, (-5, 5)),
    ("acosh", lambda x: F().acosh(x), X, (1.01, 5)),  # domain [1, inf)
    ("atanh", lambda x: F().atanh(x), X, (-0.95, 0.95)),  # domain (-1, 1)
    ("erf", lambda x: F().erf(x), X, (-3, 3)),
]

BINARY = [
    ("add2", lambda a, b: F().add2(a, b), XX, (-2, 2)),
    ("add2_broadcast", lambda a, b: F().add2(a, b), XB, (-2, 2)),
    ("add2_inplace", lambda a, b: F().add2(a * 1.0, b, inplace=True), XX, (-2, 2)),
    ("bc_add2", lambda a, b: F().bc_add2(a, b), XB, (-2, 2)),
    ("sub2", lambda a, b: F().sub2(a, b), XB, (-2, 2)),
    ("mul2", lambda a, b: F().mul2(a, b), XB, (-2, 2)),
    ("div2", lambda a, b: F().div2(a, F().add_scalar(F().abs(b), 0.5)), XB, (-2, 2)),  # divisor >= 0.5
    ("pow2", lambda a, b: F().pow2(F().add_scalar(F().abs(a), 0.1), b), XB, (-2, 2)),  # positive base
    ("add_n", lambda a, b: F().add_n(a, b, a), XX, (-2, 2)),
    ("mul_n", lambda a, b: F().mul_n(a, b, b), XX, (-2, 2)),
    ("minimum2", lambda a, b: F().minimum2(a, b), XB, (-2, 2)),
    ("maximum2", lambda a, b: F().maximum2(a, b), XB, (-2, 2)),
    ("atan2", lambda a, b: F().atan2(a, b), XX, (-2, 2)),
    ("atan2_axes", lambda a, b: F().atan2(F().round(a), F().round(b)), XX, (-1.4, 1.4)),  # zeros on the axes
    ("batch_matmul", lambda a, b: F().batch_matmul(a, b), [(2, 3, 4), (2, 4, 5)], (-2, 2)),
    ("batch_matmul_t", lambda a, b: F().batch_matmul(a, b, transpose_a=True, transpose_b=True),
     [(2, 2, 4, 3), (2, 1, 5, 4)], (-2, 2)),
    ("search_sorted", lambda a, b: F().searchsorted(F().sort(a), F().round(b)), [(2, 3, 6), (2, 3, 4)], (-3, 3)),
    ("search_sorted_right", lambda a, b: F().searchsorted(F().sort(F().round(a)), F().round(b), right=True),
     [(2, 3, 6), (2, 3, 4)], (-3, 3)),  # rounding makes ties between values and the sequence
]
for _name, _fn in [("logical_and", "logical_and"), ("logical_or", "logical_or"), ("logical_xor", "logical_xor")]:
    BINARY.append((_name, (lambda f: lambda a, b: getattr(F(), f)(F().round(a), F().round(b)))(_fn), XB, (-1, 1)))
for _fn in ["equal", "not_equal", "greater_equal", "greater", "less_equal", "less"]:
    # rounding makes equal elements, so the boundary of each comparison is exercised
    BINARY.append((_fn, (lambda f: lambda a, b: getattr(F(), f)(F().round(a), F().round(b)))(_fn), XB, (-2, 2)))


@nnabla
@pytest.mark.parametrize("build, shapes, input_range", [c[1:] for c in UNARY + BINARY],
                         ids=[c[0] for c in UNARY + BINARY])
def test_elementwise(tmp_path, build, shapes, input_range):
    from tests.parity.oracle import check_parity

    check_parity(tmp_path, build, shapes, input_range=input_range)


@nnabla
def test_halves_round_away_from_zero(tmp_path):
    from tests.parity.oracle import check_parity

    x = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -3.0]], dtype=np.float32).repeat(2, axis=0)
    check_parity(tmp_path, lambda v: F().round(v), [x.shape], inputs=[x])


@nnabla
def test_sinc_at_zero(tmp_path):
    from tests.parity.oracle import check_parity

    x = np.array([[0.0, -0.0, 1e-3, -2.0]], dtype=np.float32).repeat(2, axis=0)
    check_parity(tmp_path, lambda v: F().sinc(v), [x.shape], inputs=[x])


@nnabla
@pytest.mark.parametrize("fn", ["isnan", "isinf", "reset_nan", "reset_inf", "maximum_scalar", "minimum2"])
def test_nan_inf(tmp_path, fn):
    from tests.parity.oracle import check_parity

    x = np.array([[1.0, np.nan, np.inf, -np.inf, -2.0, 0.0]], dtype=np.float32).repeat(2, axis=0)
    build = {"isnan": lambda v: F().isnan(v), "isinf": lambda v: F().isinf(v),
             "reset_nan": lambda v: F().reset_nan(v, val=-7.0), "reset_inf": lambda v: F().reset_inf(v, val=3.0),
             "maximum_scalar": lambda v: F().maximum_scalar(v, 0.5),
             "minimum2": lambda v: F().minimum2(v, F().mul_scalar(v, -1.0))}[fn]
    check_parity(tmp_path, build, [x.shape], inputs=[x])


@nnabla
@pytest.mark.parametrize("cond_shape", [(2, 3, 4), (2, 3), (2,)])
def test_where(tmp_path, cond_shape):
    from tests.parity.oracle import check_parity

    rng = np.random.RandomState(5)
    cond = rng.choice([0.0, 1.0, -2.0], size=cond_shape).astype(np.float32)  # any non-zero is true
    a = rng.uniform(-2, 2, (2, 3, 4)).astype(np.float32)
    b = rng.uniform(-2, 2, (2, 3, 4)).astype(np.float32)
    check_parity(tmp_path, lambda c, t, f: F().where(c, t, f), [], inputs=[cond, a, b])


@nnabla
# nnabla's saver folds the dimensions before base_axis into the batch (an input (2, 3, 4) with
# base_axis 2 is saved as (-1, 4)), so only base_axis 1 (or its negative form) round-trips.
@pytest.mark.parametrize("slope_shape, base_axis, shape", [((1,), 1, X[0]), ((3,), 1, X[0]), ((3,), -2, X[0]),
                                                           ((3,), 1, (2, 3, 2, 2)), ((1,), -3, (2, 3, 2, 2))])
def test_prelu(tmp_path, slope_shape, base_axis, shape):
    import nnabla as nn

    from tests.parity.oracle import check_parity

    def build(x):
        w = nn.parameter.get_parameter_or_create(
            "slope", slope_shape, np.random.RandomState(1).uniform(-1, 1, slope_shape).astype(np.float32))
        return F().prelu(x, w, base_axis=base_axis)

    check_parity(tmp_path, build, [shape])


@nnabla
@pytest.mark.parametrize("kind", ["constant", "arange", "arange_neg", "arange_frac", "linspace", "linspace_1"])
def test_generators(tmp_path, kind):
    from tests.parity.oracle import check_parity

    def build(x):
        f = F()
        gen = {
            "constant": lambda: f.constant(2.5, shape=(1, 3, 4)),
            "arange": lambda: f.reshape(f.arange(0, 4), (1, 1, 4)),
            "arange_neg": lambda: f.reshape(f.arange(3, -1, -1), (1, 1, 4)),
            "arange_frac": lambda: f.reshape(f.arange(0.1, 0.5, 0.1), (1, 1, -1)),
            "linspace": lambda: f.reshape(f.linspace(-1.0, 2.0, 4), (1, 1, 4)),
            "linspace_1": lambda: f.reshape(f.linspace(0.7, 2.0, 1), (1, 1, 1)),
        }[kind]()
        return f.mul2(x, gen)

    check_parity(tmp_path, build, X, name=kind)


_OPSET13 = {"swish", "gelu", "mish", "relu6", "log_sigmoid", "softplus_beta", "sinc", "celu", "pow_scalar_sqrt",
            "sign", "logical_xor_scalar", "round", "atan2_axes", "search_sorted", "logical_and", "not_equal",
            "greater_equal", "batch_matmul_t", "mul_n", "hard_sigmoid"}


@nnabla
@pytest.mark.parametrize("build, shapes, input_range", [c[1:] for c in UNARY + BINARY if c[0] in _OPSET13],
                         ids=[c[0] for c in UNARY + BINARY if c[0] in _OPSET13])
def test_elementwise_opset13(tmp_path, build, shapes, input_range):
    from tests.parity.oracle import check_parity

    check_parity(tmp_path, build, shapes, input_range=input_range, opset=13)


@nnabla
def test_where_opset13(tmp_path):
    from tests.parity.oracle import check_parity

    rng = np.random.RandomState(6)
    cond = rng.choice([0.0, 1.0], size=(2, 3)).astype(np.float32)
    a, b = rng.uniform(-2, 2, (2, 2, 3, 4)).astype(np.float32)
    check_parity(tmp_path, lambda c, t, f: F().where(c, t, f), [], inputs=[cond, a, b], opset=13)


# --- without nnabla: single-function .nnp files checked against nnabla's formulas --------------

def _single_function_nnp(tmp_path, kind: str, param: str, shapes: list, out_shape: tuple):
    from nncbridge.functions.registry import function_spec
    from tests.models import write_nnp

    def dims(shape):
        return " ".join(f"dim: {d}" for d in (-1, *shape[1:]))

    names = [f"x{i}" for i in range(len(shapes))]
    variables = "".join(f'variable {{ name: "{n}" type: "Buffer" shape: {{ {dims(s)} }} }}\n'
                        for n, s in zip(names, shapes))
    inputs = " ".join(f'input: "{n}"' for n in names)
    body = f"{function_spec(kind).snake_name}_param {{ {param} }}" if param else ""
    data = "".join(f'data_variable {{ variable_name: "{n}" data_name: "{n}" }}\n' for n in names)
    nntxt = f"""
network {{
  name: "net" batch_size: {shapes[0][0] if shapes else 1}
  {variables}
  variable {{ name: "y" type: "Buffer" shape: {{ {dims(out_shape)} }} }}
  function {{ name: "f" type: "{kind}" {inputs} output: "y" {body} }}
}}
executor {{ name: "runtime" network_name: "net" {data}
  output_variable {{ variable_name: "y" data_name: "y" }} }}
"""
    return write_nnp(tmp_path / "f.nnp", nntxt)


def _softplus(x, beta=1.0):
    return np.maximum(x, 0) + np.log1p(np.exp(-beta * np.abs(x))) / beta


_R = np.random.RandomState(7)
_A = _R.uniform(-3, 3, (2, 3, 4)).astype(np.float32)
_B = _R.uniform(-3, 3, (2, 3, 4)).astype(np.float32)
_HALVES = np.array([[-2.5, -1.5, -0.5, 0.0], [0.5, 1.5, 2.5, 1.2]], dtype=np.float32)
_SPECIAL = np.array([[1.0, np.nan, np.inf, -np.inf], [0.0, -2.0, np.nan, 3.0]], dtype=np.float32)
_ZEROS = np.array([[0.0, -0.0, 1.0, -1.0], [0.0, -0.0, 0.0, -0.0]], dtype=np.float32)
_ZEROS_X = np.array([[1.0, -1.0, 0.0, -0.0], [-1.0, -1.0, -0.0, 0.0]], dtype=np.float32)
# (id, type, param text, inputs, expected)
FORMULAS = [
    ("gelu", "GELU", "", [_A], 0.5 * _A * (1 + np.tanh(np.sqrt(2 / np.pi) * (_A + 0.044715 * _A ** 3)))),
    ("softplus_beta", "SoftPlus", "beta: 2.5", [_A * 10], _softplus(_A.astype(np.float64) * 10, 2.5)),
    ("log_sigmoid", "LogSigmoid", "", [_A * 10], -_softplus(-_A.astype(np.float64) * 10)),
    ("mish", "Mish", "", [_A], _A * np.tanh(_softplus(_A.astype(np.float64)))),
    ("sinc", "Sinc", "", [_ZEROS], np.where(_ZEROS == 0, 1.0, np.sin(_ZEROS) / np.where(_ZEROS == 0, 1, _ZEROS))),
    ("hard_sigmoid", "HardSigmoid", "", [_A], np.clip(0.2 * _A + 0.5, 0, 1)),
    ("celu", "CELU", "alpha: 0.7 axis: 1", [_A],
     np.concatenate([np.where(_A >= 0, _A, 0.7 * np.expm1(_A)), np.where(-_A >= 0, -_A, 0.7 * np.expm1(-_A))], 1)),
    ("round", "Round", "", [_HALVES], np.sign(_HALVES) * np.floor(np.abs(_HALVES) + 0.5)),
    ("sign", "Sign", "alpha: 0.25", [_HALVES], np.where(_HALVES > 0, 1, np.where(_HALVES < 0, -1, 0.25))),
    ("atan2", "ATan2", "", [_ZEROS, _ZEROS_X], np.arctan2(_ZEROS, _ZEROS_X)),
    ("atan2_random", "ATan2", "", [_A, _B], np.arctan2(_A, _B)),
    ("reset_nan", "ResetNaN", "val: -7", [_SPECIAL], np.where(np.isnan(_SPECIAL), -7, _SPECIAL)),
    ("is_inf", "IsInf", "", [_SPECIAL], np.isinf(_SPECIAL).astype(np.float32)),
    # nnabla computes (x > val) ? x : val, so NaN gives val
    ("maximum_scalar_nan", "MaximumScalar", "val: 0.5", [_SPECIAL], np.where(_SPECIAL > 0.5, _SPECIAL, 0.5)),
    ("minimum2_nan", "Minimum2", "", [_SPECIAL, _SPECIAL[::-1]],
     np.where(_SPECIAL < _SPECIAL[::-1], _SPECIAL, _SPECIAL[::-1])),
    ("not_equal", "NotEqual", "", [np.round(_A), np.round(_B)], (np.round(_A) != np.round(_B)).astype(np.float32)),
    ("logical_xor_scalar", "LogicalXorScalar", "val: true", [np.round(_A)], (np.round(_A) == 0).astype(np.float32)),
    ("pow_scalar_sqrt", "PowScalar", "val: 0.5", [np.abs(_A)], np.sqrt(np.abs(_A))),
    ("r_pow_scalar", "RPowScalar", "val: 2", [_A], 2.0 ** _A),
    ("mul_n", "MulN", "", [_A, _B, _A], _A * _B * _A),
    ("search_sorted", "SearchSorted", "right: true", [np.sort(np.round(_A), -1), np.round(_B)],
     np.stack([np.stack([np.searchsorted(s, v, side="right") for s, v in zip(ss, vv)])
               for ss, vv in zip(np.sort(np.round(_A), -1), np.round(_B))]).astype(np.float32)),
]


@pytest.mark.parametrize("opset", [None, 13])
@pytest.mark.parametrize("kind, param, inputs, expected", [c[1:] for c in FORMULAS], ids=[c[0] for c in FORMULAS])
def test_formula(tmp_path, kind, param, inputs, expected, opset):
    import nncbridge
    from tests.parity.oracle import assert_close, run_onnx

    expected = np.asarray(expected)
    path = _single_function_nnp(tmp_path, kind, param, [x.shape for x in inputs], expected.shape)
    proto = nncbridge.to_onnx(nncbridge.read(path), opset=opset)
    got = run_onnx(proto, {f"x{i}": x for i, x in enumerate(inputs)})[0]
    # (the sign of a zero result is not compared: onnxruntime's Where turns a selected -0 into +0)
    assert_close(got, expected.astype(np.float32), what=kind)


@pytest.mark.parametrize("cond_shape", [(2, 3, 4), (2, 3)])
def test_where_formula(tmp_path, cond_shape):
    import nncbridge
    from tests.parity.oracle import assert_close, run_onnx

    cond = _R.choice([0.0, 1.0, -2.0], size=cond_shape).astype(np.float32)
    path = _single_function_nnp(tmp_path, "Where", "", [cond.shape, _A.shape, _B.shape], _A.shape)
    got = run_onnx(nncbridge.to_onnx(nncbridge.read(path)), {"x0": cond, "x1": _A, "x2": _B})[0]
    assert_close(got, np.where(cond.reshape(cond_shape + (1,) * (3 - len(cond_shape))) != 0, _A, _B))

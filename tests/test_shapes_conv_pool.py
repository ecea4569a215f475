"""Shape rules of the convolution and pooling families, with expected sizes worked out by hand
from nnabla's documented formulas (no nnabla needed)."""
from __future__ import annotations

import pytest

from nncbridge.functions.registry import FunctionCall, function_spec, shape_rule_for
from nncbridge.model.graph import Function


def _shape(type_: str, shapes: list[tuple], **params) -> tuple:
    fn = Function("f", type_, [f"i{k}" for k in range(len(shapes))], ["y"], params)
    call = FunctionCall(fn, function_spec(type_), [tuple(s) for s in shapes])
    return shape_rule_for(type_)(call)[0]


@pytest.mark.parametrize("params,expected", [
    # ignore_border: (w + 2p - k) // s + 1
    (dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0), ignore_border=True), (2, 3, 3, 2)),
    (dict(kernel=(3, 2), stride=(2, 3), pad=(1, 1), ignore_border=True), (2, 3, 4, 2)),
    # not ignore_border: (w + p - 1) // s + 1, kernel plays no part
    (dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0), ignore_border=False), (2, 3, 4, 3)),
    (dict(kernel=(3, 5), stride=(2, 3), pad=(1, 2), ignore_border=False), (2, 3, 4, 3)),
])
def test_pooling_output_size(params, expected):
    for type_ in ("MaxPooling", "AveragePooling", "SumPooling"):
        assert _shape(type_, [(2, 3, 7, 5)], **params) == expected


def test_pooling_channel_last_and_leading_axes():
    assert _shape("MaxPooling", [(2, 7, 5, 3)], kernel=(2, 2), ignore_border=True,
                  channel_last=True) == (2, 3, 2, 3)
    assert _shape("AveragePooling", [(2, 4, 3, 7, 5)], kernel=(2, 2), ignore_border=True) == (2, 4, 3, 3, 2)


def test_convolution_family_sizes():
    # (w + 2p - (d(k-1)+1)) // s + 1 = (9 + 2 - 5) // 2 + 1 = 4 ; (8 + 0 - 3) // 1 + 1 = 6
    assert _shape("Convolution", [(2, 4, 9, 8), (6, 2, 3, 3)], pad=(1, 0), stride=(2, 1), dilation=(2, 1),
                  group=2, base_axis=1) == (2, 6, 4, 6)
    assert _shape("Convolution", [(2, 9, 8, 4), (6, 3, 3, 4)], channel_last=True, base_axis=1) == (2, 7, 6, 6)
    assert _shape("Convolution", [(2, 3, 4, 6, 5), (2, 4, 3, 3)], base_axis=2) == (2, 3, 2, 4, 3)
    # (i-1)s - 2p + d(k-1) + 1 + op = 3*2 - 2 + 2 + 1 + 1 = 8
    assert _shape("Deconvolution", [(2, 4, 4, 4), (4, 3, 3, 3)], pad=(1, 1), stride=(2, 2),
                  output_padding=(1, 0), group=1, base_axis=1) == (2, 3, 8, 7)
    assert _shape("DepthwiseConvolution", [(2, 3, 6, 7), (6, 3, 3)], multiplier=2, base_axis=1) == (2, 6, 4, 5)
    assert _shape("DepthwiseDeconvolution", [(2, 6, 4, 5), (6, 3, 3)], divisor=3, base_axis=1) == (2, 2, 6, 7)


def test_other_pooling_shapes():
    assert _shape("GlobalAveragePooling", [(2, 3, 4, 5, 6)]) == (2, 3, 1, 1)
    assert _shape("Unpooling", [(2, 3, 4, 5)], kernel=(2, 3)) == (2, 3, 8, 15)
    assert _shape("Unpooling", [(2, 4, 5, 3)], kernel=(2, 3), channel_last=True) == (2, 8, 15, 3)


@pytest.mark.parametrize("type_,shapes,params", [
    ("Convolution", [(2, 4, 9, 8), (6, 3, 3, 3)], dict(group=1, base_axis=1)),  # channels 4 != 3
    ("Convolution", [(2, 4, 2, 2), (6, 4, 3, 3)], dict(group=1, base_axis=1)),  # kernel larger than input
    ("MaxPooling", [(2, 3, 2, 2)], dict(kernel=(3, 3), ignore_border=True)),
    ("DepthwiseConvolution", [(2, 3, 6, 7), (5, 3, 3)], dict(multiplier=2, base_axis=1)),
])
def test_inconsistent_shapes_are_rejected(type_, shapes, params):
    with pytest.raises(ValueError):
        _shape(type_, shapes, **params)

import pytest

pytestmark = pytest.mark.nnabla


def test_affine_relu_softmax(tmp_path):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    from tests.parity.oracle import check_parity

    check_parity(tmp_path, lambda x: F.softmax(F.relu(PF.affine(x, 7))), [(3, 4, 5)], name="affine_relu_softmax")


def test_convolution_maxpool(tmp_path):
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    from tests.parity.oracle import check_parity

    check_parity(tmp_path, lambda x: F.max_pooling(PF.convolution(x, 4, (3, 3), pad=(1, 1)), (2, 2)),
                 [(2, 3, 8, 8)], name="conv_pool")

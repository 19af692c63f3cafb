"""The course notes' remaining worked numbers (see docs/course_notes.md), asserted against the project's own
functions: convolution, stride and padding by hand (notes 0), the 5x5 filtering example (notes 4),
cross-entropy vs L1 (notes 1), output sizes of the notes' nets, the diagonal kernel, the confusion
matrix and accuracy examples. (`test_worked_examples.py` holds the softmax, NLL and backprop ones.)"""

import math

import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from src.models.classifier import metrics_from_confusion
from src.models.nets.common import conv_output_size
from src.models.nets.small_cnns import notes0_cnn, notes1_cnn, notes2_simple_cnn, notes4_dropout_cnn
from src.teaching.conv_arithmetic import convolve2d, filter_with_zero_border, pool2d, repeated_convolution
from src.teaching.filters import DIAGONAL_KERNEL, NOTES4_IMAGE, NOTES4_KERNEL
from src.teaching.losses import NOTES1_ROWS, NOTES1_TARGET, cross_entropy_and_l1
from src.teaching.pooling import resize_half

# Notes 0's 4x4 input of the convolution, stride and padding examples.
NOTES0_INPUT = [[0, 1, 7, 5], [5, 5, 6, 6], [5, 3, 3, 0], [1, 1, 1, 2]]


def as_lists(t: torch.Tensor) -> list:
    return t.to(torch.int64).tolist()


def test_convolution_4x4_by_3x3():
    """Notes 0, example 1: 4x4 input (x) 3x3 kernel [[1,0,1],[1,2,0],[3,0,1]] -> [[40,32],[26,25]]."""
    out = convolve2d(NOTES0_INPUT, [[1, 0, 1], [1, 2, 0], [3, 0, 1]])
    assert as_lists(out) == [[40, 32], [26, 25]]
    assert out.shape == (conv_output_size(4, 3), conv_output_size(4, 3))


def test_stride_1_vs_2():
    """Notes 0: kernel [[1,0],[1,2]] with stride 1 -> 3x3 [[15,18,25],[16,14,9],[8,6,8]];
    stride 2 -> 2x2 [[15,25],[8,8]]."""
    kernel = [[1, 0], [1, 2]]
    assert as_lists(convolve2d(NOTES0_INPUT, kernel, stride=1)) == [[15, 18, 25], [16, 14, 9], [8, 6, 8]]
    assert as_lists(convolve2d(NOTES0_INPUT, kernel, stride=2)) == [[15, 25], [8, 8]]
    assert conv_output_size(4, 2, stride=1) == 3 and conv_output_size(4, 2, stride=2) == 2


def test_padding():
    """Notes 0: kernel [[1,0,0],[1,2,1],[1,2,3]] -> [[41,33],[25,23]] unpadded; with zero padding 1 a 4x4
    map, the notes' [[26,42,55,35],[34,41,33,28],[18,25,23,14],[3,9,8,8]] (its centre is the unpadded result)."""
    kernel = [[1, 0, 0], [1, 2, 1], [1, 2, 3]]
    assert as_lists(convolve2d(NOTES0_INPUT, kernel)) == [[41, 33], [25, 23]]
    padded = convolve2d(NOTES0_INPUT, kernel, padding=1)
    assert as_lists(padded) == [[26, 42, 55, 35], [34, 41, 33, 28], [18, 25, 23, 14], [3, 9, 8, 8]]
    assert as_lists(padded[1:3, 1:3]) == [[41, 33], [25, 23]]
    assert padded.shape == (conv_output_size(4, 3, padding=1),) * 2 == (4, 4)


def test_notes4_filtering_with_zero_border():
    """Notes 4: the 5x5 image filtered with [[0,1,0],[1,0,1],[1,1,0]]: the valid convolution
    [[4,8,4],[5,5,6],[8,5,9]] written into the middle of a 5x5 grid whose border is 0 (not computed);
    img[1,1] = 4 and img[1,2] = 8 as the notes spell out."""
    out = filter_with_zero_border(NOTES4_IMAGE, NOTES4_KERNEL)
    assert as_lists(out) == [
        [0, 0, 0, 0, 0],
        [0, 4, 8, 4, 0],
        [0, 5, 5, 6, 0],
        [0, 8, 5, 9, 0],
        [0, 0, 0, 0, 0],
    ]
    assert as_lists(convolve2d(NOTES4_IMAGE, NOTES4_KERNEL)) == [[4, 8, 4], [5, 5, 6], [8, 5, 9]]
    # ... which is not the convolution of the zero-padded image (its border pixels are not 0):
    assert as_lists(convolve2d(NOTES4_IMAGE, NOTES4_KERNEL, padding=1)[0]) != [0, 0, 0, 0, 0]


def trunc4(value: float) -> float:
    return math.floor(value * 10_000) / 10_000


def test_cross_entropy_vs_l1_table():
    """Notes 1 (target "cat" = class 1): [0.1, 0.9] -> CE 0.1053, L1 0.1; [0.7, 0.3] -> L1 0.7 and CE
    printed as 2.3025. The notes truncate to 4 decimals (-ln 0.9 = 0.10536); its 2.3025 is -ln 0.1
    (a prediction giving the true class 0.1): the cross-entropy of [0.7, 0.3] is -ln 0.3 = 1.2040."""
    (good, good_ce, good_l1), (bad, bad_ce, bad_l1) = NOTES1_ROWS
    ce, l1 = cross_entropy_and_l1(good, NOTES1_TARGET)
    assert trunc4(ce) == good_ce == 0.1053
    assert l1 == pytest.approx(good_l1, abs=1e-12)
    ce, l1 = cross_entropy_and_l1(bad, NOTES1_TARGET)
    assert l1 == pytest.approx(bad_l1, abs=1e-12)
    assert round(ce, 4) == 1.2040 == round(-math.log(0.3), 4)
    assert trunc4(cross_entropy_and_l1([0.9, 0.1], NOTES1_TARGET)[0]) == bad_ce == 2.3025


def layer_output_shapes(net: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
    """(layer type, output shape without batch) of every conv / pool / flatten / linear layer, in order."""
    shapes = []
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.Flatten, nn.Linear)
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape[1:]))))
             for m in net.modules() if isinstance(m, kinds)]
    net.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return shapes


def test_output_size_formula_on_the_notes_nets():
    """floor((I - K + 2P) / S) + 1 layer by layer gives each course-notes net's flattened size, and the nets'
    actual layer outputs agree: notes0 6272 on 32 px, notes1 576 and notes4 1600 on 28 px, notes2 4096."""
    o = conv_output_size
    side = o(o(32, 3), 3) // 2  # notes0: conv 3, conv 3, max-pool 2
    assert side == o(o(o(32, 3), 3), 2, stride=2) == 14 and 32 * side * side == 6272
    assert notes0_cnn((3, 32, 32), 10).flat_features == 32 * side * side

    side = o(o(o(o(o(28, 5), 5), 2, 2), 5), 2, 2)  # notes1: conv 5, conv 5, pool, conv 5, pool
    assert side == 3 and 64 * side * side == 576 == notes1_cnn((1, 28, 28), 10).flat_features
    shapes = layer_output_shapes(notes1_cnn((1, 28, 28), 10), (1, 28, 28))
    assert [s for _, s in shapes[:5]] == [(16, 24, 24), (32, 20, 20), (32, 10, 10), (64, 6, 6), (64, 3, 3)]

    side = o(o(o(o(32, 3, padding=1), 2, 2), 3, padding=1), 2, 2)  # notes2: padded convs keep the size
    assert 64 * side * side == 4096 == notes2_simple_cnn((3, 32, 32), 10).flat_features


def test_notes4_printed_summary():
    """Notes 4's Keras summary: conv (24,24,32) 832 params, pool (12,12,32), conv (10,10,64) 18,496,
    pool (5,5,64), flatten 1600, dense 128 204,928, dense 10 1,290; 225,546 in total (5x5 first kernel)."""
    net = notes4_dropout_cnn((1, 28, 28), 10)
    shapes = [s for _, s in layer_output_shapes(net, (1, 28, 28))]
    channels_last = [s if len(s) != 3 else (s[1], s[2], s[0]) for s in shapes]
    assert channels_last == [(24, 24, 32), (12, 12, 32), (10, 10, 64), (5, 5, 64), (1600,), (128,), (10,)]
    params = [sum(p.numel() for p in m.parameters()) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert params == [832, 18_496, 204_928, 1_290] and sum(params) == 225_546
    assert conv_output_size(28, 5) == 24 and conv_output_size(conv_output_size(24, 2, 2), 3) == 10


def test_diagonal_kernel_three_times():
    """Notes 0: the diagonal kernel applied three times to a 28 px MNIST digit: 28 -> 26 -> 24 -> 22
    (on the 8 px digits here: 8 -> 6 -> 4 -> 2)."""
    for side, expected in ((28, [28, 26, 24, 22]), (8, [8, 6, 4, 2])):
        maps = repeated_convolution(torch.rand(side, side), DIAGONAL_KERNEL, times=3)
        assert [m.shape[0] for m in maps] == [m.shape[1] for m in maps] == expected
    assert as_lists(DIAGONAL_KERNEL) == [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    # what it computes: the sum along the anti-diagonal of each 3x3 window
    image = torch.arange(16.0).reshape(4, 4)
    once = repeated_convolution(image, DIAGONAL_KERNEL, 1)[1]
    assert as_lists(once) == [[2 + 5 + 8, 3 + 6 + 9], [6 + 9 + 12, 7 + 10 + 13]]


def test_confusion_matrix_accuracy_examples():
    """Notes 0: accuracy = correct / all. Its 3x3 confusion matrix (rows actual, columns predicted)
    [[6,4,2],[3,6,3],[2,5,8]] has 6 + 6 + 8 = 20 of 39 right; predicted [1,0,2,1,0] vs labels
    [1,0,1,1,2] gives 3 right of 5 = 0.6."""
    matrix = torch.tensor([[6, 4, 2], [3, 6, 3], [2, 5, 8]])
    assert metrics_from_confusion(matrix)["acc"] == torch.tensor(20 / 39, dtype=torch.float32)

    predicted, labels = torch.tensor([1, 0, 2, 1, 0]), torch.tensor([1, 0, 1, 1, 2])
    assert int((predicted == labels).sum()) == 3
    confusion = MulticlassConfusionMatrix(num_classes=3)(predicted, labels)  # what the module accumulates
    assert metrics_from_confusion(confusion)["acc"] == torch.tensor(0.6, dtype=torch.float32)


def test_pooling_kinds_and_resize():
    """Notes 4's pooling kinds on a 4x4 matrix, overlapped 3x3/stride 2, and "resize 1/2" (bilinear at
    exactly half) = 2x2 average pooling, unlike 2x2 max pooling."""
    x = [[1, 3, 2, 9], [7, 4, 1, 5], [8, 6, 3, 4], [2, 1, 7, 0]]
    assert as_lists(pool2d(x, "max", 2)) == [[7, 9], [8, 7]]
    assert pool2d(x, "avg", 2).tolist() == [[3.75, 4.25], [4.25, 3.5]]
    assert as_lists(pool2d(x, "min", 2)) == [[1, 1], [1, 0]]
    assert as_lists(pool2d(x, "max", 3, stride=2)) == [[8]]
    assert pool2d(torch.rand(28, 28), "max", 3, 2).shape == (conv_output_size(28, 3, 2),) * 2 == (13, 13)
    image = torch.rand(8, 8, dtype=torch.float64)
    assert torch.allclose(resize_half(image, "bilinear"), pool2d(image, "avg", 2))
    assert torch.equal(resize_half(image, "nearest"), image[::2, ::2])

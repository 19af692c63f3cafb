"""`explain`: the one-sentence error behind an exception, however it is wrapped, found by type."""

from __future__ import annotations

from src.errors import UserError, explain
from src.models.nets.common import InputShapeError


def test_a_nets_input_shape_error_wrapped_by_hydra_is_a_user_error():
    try:
        try:
            raise InputShapeError("lenet5 needs images of at least 28x28 pixels, but the data set gives 1x8x8.")
        except InputShapeError as exc:
            raise RuntimeError("Error in call to target 'src.models.nets.lenet.lenet5'") from exc
    except RuntimeError as wrapped:
        found = explain(wrapped)
    assert isinstance(found, UserError) and str(found).startswith("lenet5 needs images of at least 28x28")


def test_an_error_of_another_kind_is_not_explained():
    class InputShapeError(ValueError):  # the same name, another class: classes are matched, not names
        pass

    assert explain(RuntimeError("boom")) is None
    assert explain(InputShapeError("x")) is None

"""The config check's `_target_` import: a misspelt name, a missing package and a fault inside the
target's own module are three different problems, each reported as what it is."""

from __future__ import annotations

import pytest

from src.config.schema import validate_config
from src.errors import UserError


def check(target: str) -> None:
    validate_config({"model": {"_target_": target}})


@pytest.mark.parametrize("target", ["src.models.classifer.ClassificationModule",  # no such module
                                    "src.models.classifier.ClassificationModul",  # no such name in it
                                    "torch.optim.SGD.step_size"])  # no such attribute
def test_a_misspelt_target_is_a_spelling_mistake(target):
    with pytest.raises(UserError, match=rf"^_target_ {target} does not exist; check the spelling in the config\.$"):
        check(target)


def test_a_target_whose_module_imports_a_missing_package_names_the_package(tmp_path, monkeypatch):
    (tmp_path / "needs_missing.py").write_text("import package_that_is_not_installed\n\nclass Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="imports the module 'package_that_is_not_installed', which is not installed; "
                                        "install the package that provides it") as caught:
        check("needs_missing.Model")
    assert isinstance(caught.value.__cause__, ImportError)  # the import's own error stays chained


def test_a_fault_inside_the_target_module_keeps_its_traceback(tmp_path, monkeypatch):
    (tmp_path / "broken_target.py").write_text("RATE = 1 / 0\n\nclass Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:  # not a UserError: the code, not the config, is wrong
        check("broken_target.Model")
    assert isinstance(caught.value.__cause__, ZeroDivisionError)

"""Data modules import no model code: a data set is added or changed without reading the models."""

import subprocess
import sys

from tests.conftest import ROOT

PROGRAM = """
import importlib, pkgutil, sys
import src.data
for info in pkgutil.iter_modules(src.data.__path__, "src.data."):
    importlib.import_module(info.name)
print(sorted(name for name in sys.modules if name.startswith("src.data.")))
print(sorted(name for name in sys.modules if name == "src.models" or name.startswith("src.models.")))
"""


def test_importing_every_data_module_imports_nothing_from_src_models():
    # A new interpreter: the test process has imported models already.
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data_modules, model_modules = result.stdout.strip().splitlines()
    assert "src.data.image_folder" in data_modules and "src.data.image_folder_settings" in data_modules
    assert model_modules == "[]", model_modules

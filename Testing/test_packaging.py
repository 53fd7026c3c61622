"""Slicer builds install only what CMakeLists.txt names; pyproject pins the known-good versions."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _files(folder, pattern):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(pattern)
                  if "__pycache__" not in p.parts and not p.name.startswith("."))


def test_library_cmakelists_names_every_file():
    lib = ROOT / "CMRRiskExtension"
    cm = (lib / "CMakeLists.txt").read_text()
    files = [f for f in _files(lib / "cmrrisk", "*") if (lib / "cmrrisk" / f).is_file()]
    missing = [f for f in files if f"cmrrisk/{f}" not in cm]
    assert not missing, f"not named in CMRRiskExtension/CMakeLists.txt: {missing}"
    named = re.findall(r"cmrrisk/\S+", cm)
    gone = [n for n in named if not (lib / n).exists()]
    assert not gone, f"named in CMakeLists.txt but absent: {gone}"


def test_module_cmakelists_names_every_file():
    for name in ("CMRRiskSegment", "CMRRiskPredict"):
        mod = ROOT / name
        cm = (mod / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", name)
        for f in _files(mod, "*.py") + _files(mod, "Resources/*/*"):
            assert f in cm, f"{f} not named in {name}/CMakeLists.txt"


def test_package_data_installs_non_python_files():
    """pip installs only what pyproject's package-data matches: every non-Python file of the
    package must match one of its patterns."""
    import fnmatch

    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as fh:
        patterns = tomllib.load(fh)["tool"]["setuptools"]["package-data"]["cmrrisk"]
    lib = ROOT / "CMRRiskExtension" / "cmrrisk"
    data = [f for f in _files(lib, "*") if (lib / f).is_file() and not f.endswith(".py")]
    unmatched = [f for f in data if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert not unmatched, f"not installed by pip (pyproject package-data): {unmatched}"


def test_top_level_cmakelists():
    cm = (ROOT / "CMakeLists.txt").read_text()
    assert "project(CMRRiskExtension)" in cm
    assert re.search(r'EXTENSION_DEPENDS\s+"PyTorch SlicerRadiomics"', cm)
    for sub in ("CMRRiskExtension", "CMRRiskSegment", "CMRRiskPredict"):
        assert f"add_subdirectory({sub})" in cm


def test_core_does_not_import_slicer():
    core = ROOT / "CMRRiskExtension" / "cmrrisk"
    offenders = []
    for p in core.rglob("*.py"):
        if "mrml" in p.parts:
            continue
        text = p.read_text()
        if re.search(r"^\s*(import|from)\s+(slicer|qt|ctk)\b", text, re.M):
            offenders.append(str(p))
    assert not offenders, f"core modules import Slicer/Qt: {offenders}"


def test_torch_pinned():
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()


def test_module_dependency_check_names_missing_packages(monkeypatch):
    pytest = __import__("pytest")
    pytest.importorskip("slicer")
    from cmrrisk.mrml import dependencies as D

    assert D.missing({"numpy": "numpy", "cmrrisk_no_such_package": "x==1"}, also=()) == ["cmrrisk_no_such_package"]
    assert D.missing({}, also=("torch",)) == []


@pytest.mark.parametrize("module", ["CMRRiskSegment", "CMRRiskPredict"])
def test_widget_uses_only_widgets_its_ui_file_defines(module):
    """Widgets cannot run here: at least every ``self.ui.<name>`` must exist in the .ui file."""
    import re
    import xml.etree.ElementTree as ET

    src = (ROOT / module / f"{module}.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", src))
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    defined = {w.get("name") for w in tree.iter("widget")}
    assert used and not sorted(used - defined)


#: third-party import names that Slicer itself (or an extension named in ``also``) provides
SLICER_PROVIDED = {"numpy", "SimpleITK", "pydicom", "vtk", "slicer", "qt", "ctk", "PyTorchUtils"}


def _third_party_imports(paths) -> set:
    import ast
    import sys

    names = set()
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "cmrrisk"}


def _module_packages(module: str):
    """REQUIRED_PACKAGES and the ``also`` names of a Slicer module, read from its source (the
    module itself imports slicer's GUI classes and cannot be imported here)."""
    import ast

    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    required = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                    and any(getattr(t, "id", None) == "REQUIRED_PACKAGES" for t in n.targets))
    also = next(ast.literal_eval(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", None) == "missing" for k in n.keywords if k.arg == "also")
    return required, set(also)


def test_slicer_modules_install_every_package_the_core_imports():
    """A fresh Slicer gets the install prompt for every third-party package the core imports:
    CMRRisk Predict runs the whole pipeline, CMRRisk Segment the segmentation core."""
    core = ROOT / "CMRRiskExtension" / "cmrrisk"
    required, also = _module_packages("CMRRiskPredict")
    missing = _third_party_imports(core.rglob("*.py")) - set(required) - also - SLICER_PROVIDED
    assert not missing, f"CMRRiskPredict.REQUIRED_PACKAGES lacks {sorted(missing)}"
    seg_files = [*(core / "segmentation").glob("*.py"), *(core / "mrml").glob("*.py"),
                 *(core / f"{m}.py" for m in ("image", "dicom", "modeldir", "metrics", "scar", "labels", "errors"))]
    required, also = _module_packages("CMRRiskSegment")
    missing = _third_party_imports(seg_files) - set(required) - also - SLICER_PROVIDED
    assert not missing, f"CMRRiskSegment.REQUIRED_PACKAGES lacks {sorted(missing)}"
    # a pinned install request asks for the version that pyproject.toml pins
    text = (ROOT / "pyproject.toml").read_text()
    for module in ("CMRRiskSegment", "CMRRiskPredict"):
        for req in _module_packages(module)[0].values():
            assert "==" not in req or f'"{req}"' in text, f"{module}: {req} differs from pyproject.toml"

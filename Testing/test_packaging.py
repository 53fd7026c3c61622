"""Slicer builds install only what CMakeLists.txt names; pyproject pins what DESIGN.md lists."""

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

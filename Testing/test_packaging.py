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
        files = _files(mod, "*.py") + _files(mod, "Resources/*/*") + _files(mod, "Resources/*.txt")
        assert f"{name}Lib/logic.py" in files and "Resources/requirements.txt" in files
        for f in files:
            assert f in cm, f"{f} not named in {name}/CMakeLists.txt"


@pytest.mark.parametrize("module", ["CMRRiskSegment", "CMRRiskPredict"])
def test_module_file_is_a_thin_shell(module):
    """Module, Widget and Test classes only; the rest lives in the module's Lib package."""
    import ast

    src = (ROOT / module / f"{module}.py").read_text()
    classes = [n.name for n in ast.parse(src).body if isinstance(n, ast.ClassDef)]
    assert classes == [module, f"{module}Widget", f"{module}Test"]
    assert len(src.splitlines()) <= 120
    lib = ROOT / module / f"{module}Lib"
    assert {"logic.py", "parameters.py", "widget.py", "selftest.py"} <= {p.name for p in lib.glob("*.py")}


def test_shared_helpers_are_written_once():
    """Path set-up aside (needed before cmrrisk can be imported), no function or class of one
    module's Lib (of three statements or more) is defined again in the other's: the shared ones
    (busy state, parameter-node life cycle, dependencies) live in cmrrisk.mrml."""
    import ast

    def names(module):
        out = set()
        for p in (ROOT / module / f"{module}Lib").glob("*.py"):
            for n in ast.walk(ast.parse(p.read_text())):
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and len(n.body) >= 3:
                    out.add((n.name, ast.dump(n)))
        return out

    twice = {name for name, _ in names("CMRRiskSegment") & names("CMRRiskPredict")}
    assert not twice, f"defined identically in both modules' Lib: {sorted(twice)}"


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


def _cmake_set(cm, name):
    m = re.search(r'set\(%s\s+"([^"]*)"\)' % name, cm)
    return m.group(1) if m else None


def test_top_level_cmakelists():
    """Metadata the Extensions Index checks: the current template's CMake minimum, every field
    filled, radiomics not a hard dependency (SlicerRadiomics has no macOS build), screenshots
    that exist in the repository under the raw URL of the catalog entry's scm_url."""
    import json

    cm = (ROOT / "CMakeLists.txt").read_text()
    assert "project(CMRRiskExtension)" in cm
    assert "cmake_minimum_required(VERSION 3.20.6...3.22.6 FATAL_ERROR)" in cm
    for sub in ("CMRRiskExtension", "CMRRiskSegment", "CMRRiskPredict"):
        assert f"add_subdirectory({sub})" in cm
    depends = _cmake_set(cm, "EXTENSION_DEPENDS").split()
    assert depends == ["PyTorch"] and "SlicerRadiomics" not in cm.split("EXTENSION_DEPENDS")[1].split("\n")[0]
    for field in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                  "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_STATUS"):
        assert _cmake_set(cm, field), field
    entry = json.loads((ROOT / "CMRRiskExtension.json").read_text())
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
                                       "slicer-extension-catalog-entry-schema-v1.0.")
    allowed = {"$schema", "build_dependencies", "build_subdirectory", "category", "scm_revision", "scm_type",
               "scm_url", "enabled", "tier"}
    assert set(entry) <= allowed and {"$schema", "category", "scm_url"} <= set(entry)
    assert entry["category"] == _cmake_set(cm, "EXTENSION_CATEGORY") == "Cardiac"
    assert entry["build_dependencies"] == depends
    repo = entry["scm_url"].removesuffix(".git").replace("https://github.com/", "")
    raw = f"https://raw.githubusercontent.com/{repo}/{entry['scm_revision']}/"
    assert _cmake_set(cm, "EXTENSION_HOMEPAGE") == f"https://github.com/{repo}"
    urls = _cmake_set(cm, "EXTENSION_SCREENSHOTURLS").split() + [_cmake_set(cm, "EXTENSION_ICONURL")]
    assert len(urls) >= 5
    for url in urls:
        assert url.startswith(raw), url
        path = ROOT / url[len(raw):]
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", url
        assert path.stat().st_size < 400_000, f"{url}: keep screenshots small"


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

    src = (ROOT / module / f"{module}Lib" / "widget.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", src)) | set(re.findall(r'"(\w+(?:Button|Selector|SpinBox|ComboBox|'
                                                                  r'CheckBox|LineEdit))"', src))
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    defined = {w.get("name") for w in tree.iter("widget")}
    assert used and not sorted(used - defined)


@pytest.mark.parametrize("module", ["CMRRiskSegment", "CMRRiskPredict"])
def test_ui_widgets_are_bound_to_every_parameter(module):
    """Every parameter of the module has exactly one widget with its SlicerParameterName, and
    every SlicerParameterName names a parameter."""
    import ast
    import xml.etree.ElementTree as ET

    tree = ast.parse((ROOT / module / f"{module}Lib" / "parameters.py").read_text())
    params = [n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
              and getattr(n.func, "id", None) == "Parameter"]
    root = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    bound = [w.find("property[@name='SlicerParameterName']/string").text for w in root.iter("widget")
             if w.find("property[@name='SlicerParameterName']") is not None]
    assert sorted(bound) == sorted(params)


#: third-party import names that Slicer itself (or an extension named in ``also``) provides
SLICER_PROVIDED = {"numpy", "SimpleITK", "pydicom", "vtk", "slicer", "qt", "ctk", "PyTorchUtils", "SampleData"}


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
    """The module's ``Resources/requirements.txt`` ({import name: requirement}) and the names it
    gets from Slicer extensions (torch from PyTorch; radiomics optional)."""
    from cmrrisk.mrml.dependencies import read_requirements

    return read_requirements(str(ROOT / module / "Resources" / "requirements.txt")), {"torch", "radiomics"}


def test_slicer_modules_install_every_package_the_core_imports():
    """A fresh Slicer gets the install prompt for every third-party package the core imports:
    CMRRisk Predict runs the whole pipeline, CMRRisk Segment the segmentation core."""
    import ast

    core = ROOT / "CMRRiskExtension" / "cmrrisk"
    # the DICOM SEG / SR / DICOMweb feature asks for its own packages on first use
    # (cmrrisk.mrml.dicomseg.REQUIRED_PACKAGES); they must cover what its files import
    dicom_files = [*(core / "dicomout").glob("*.py"), core / "mrml" / "dicomseg.py"]
    tree = ast.parse((core / "mrml" / "dicomseg.py").read_text())
    dicom_required = next(ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                          and any(getattr(t, "id", None) == "REQUIRED_PACKAGES" for t in n.targets))
    missing = _third_party_imports(dicom_files) - set(dicom_required) - SLICER_PROVIDED
    assert not missing, f"cmrrisk.mrml.dicomseg.REQUIRED_PACKAGES lacks {sorted(missing)}"
    text = (ROOT / "pyproject.toml").read_text()
    for req in dicom_required.values():
        assert "==" not in req or f'"{req}"' in text, f"dicomseg: {req} differs from pyproject.toml"
    dicom_only = _third_party_imports(dicom_files) - _third_party_imports(
        p for p in core.rglob("*.py") if p not in dicom_files)
    required, also = _module_packages("CMRRiskPredict")
    missing = _third_party_imports(core.rglob("*.py")) - set(required) - also - SLICER_PROVIDED - dicom_only
    assert not missing, f"CMRRiskPredict's requirements.txt lacks {sorted(missing)}"
    seg_files = [*(core / "segmentation").glob("*.py"),
                 *(p for p in (core / "mrml").glob("*.py") if p not in dicom_files),
                 *(core / f"{m}.py" for m in ("image", "dicom", "modeldir", "metrics", "scar", "labels", "errors"))]
    required, also = _module_packages("CMRRiskSegment")
    missing = _third_party_imports(seg_files) - set(required) - also - SLICER_PROVIDED
    assert not missing, f"CMRRiskSegment's requirements.txt lacks {sorted(missing)}"


def test_requirements_are_lower_bounds_that_the_pinned_versions_satisfy():
    """Slicer's guidance: lower bounds, never torch (PyTorchUtils installs it); the versions
    pyproject.toml pins (what the tests ran with) satisfy every bound."""
    import tomllib

    from packaging.requirements import Requirement

    with open(ROOT / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    pins = {}
    for req in project["dependencies"] + [r for g in project["optional-dependencies"].values() for r in g]:
        r = Requirement(req)
        pinned = [s.version for s in r.specifier if s.operator == "=="]
        if pinned:
            pins[r.name.lower()] = pinned[0]
    for module in ("CMRRiskSegment", "CMRRiskPredict"):
        for name, req in _module_packages(module)[0].items():
            r = Requirement(req)
            assert name != "torch" and r.name.lower() != "torch"
            assert not [s for s in r.specifier if s.operator in ("==", "===", "~=")], f"{module}: {req} is a pin"
            assert any(s.operator == ">=" for s in r.specifier), f"{module}: {req} has no lower bound"
            if r.name.lower() in pins:
                assert r.specifier.contains(pins[r.name.lower()]), f"{module}: {req} excludes the tested {pins[r.name.lower()]}"

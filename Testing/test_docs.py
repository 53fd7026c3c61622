"""Docs that cannot drift: the CLI reference names every subcommand and option of the real
parser, the Slicer console snippet and the README's quick start run, and every local link and
every benchmark JSON that the docs name exists."""

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)


def _block_after(text: str, marker: str) -> str:
    """The first fenced code block after ``<!-- marker -->`` in ``text``."""
    tag = f"<!-- {marker} -->"
    assert tag in text, f"marker {tag} not found"
    m = FENCE.search(text, text.index(tag))
    assert m, f"no code block after {tag}"
    return m.group(1)


def _subparsers():
    from cmrrisk.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _sections(markdown: str) -> dict:
    """``## name`` heading -> the text up to the next ``##`` heading."""
    parts = re.split(r"^## +(.+?)\s*$", markdown, flags=re.M)
    return {parts[i].strip().strip("`"): parts[i + 1] for i in range(1, len(parts), 2)}


# ---- (a) the CLI reference


def test_cli_reference_names_every_subcommand_and_option():
    sections = _sections((DOCS / "reference" / "cli.md").read_text(encoding="utf-8"))
    missing = []
    for name, sub in _subparsers().items():
        if name not in sections:
            missing.append(f"subcommand {name} (no '## {name}' section)")
            continue
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                if not re.search(rf"`{re.escape(option)}[ `=/]", sections[name]):
                    missing.append(f"{name} {option}")
    assert not missing, "docs/reference/cli.md lacks: " + "; ".join(missing)


def test_cli_reference_has_no_subcommand_the_parser_lacks():
    sections = _sections((DOCS / "reference" / "cli.md").read_text(encoding="utf-8"))
    known = set(_subparsers())
    extra = [s for s in sections if s.islower() and " " not in s and s not in known]
    assert not extra, f"docs/reference/cli.md documents subcommands that do not exist: {extra}"


# ---- (b) the Slicer Python console snippet


def test_slicer_console_snippet_runs_against_a_scene(scene, segment_module, predict_module):
    code = _block_after((DOCS / "how-to" / "slicer-python-console.md").read_text(encoding="utf-8"),
                        "test: slicer-console")
    namespace = {"__name__": "__console__"}
    exec(compile(code, "docs/how-to/slicer-python-console.md", "exec"), namespace)
    segmentations = list(scene.GetNodesByClass("vtkMRMLSegmentationNode"))
    assert len(segmentations) == 3
    for node in segmentations:
        assert node.GetSegmentation().GetNumberOfSegments() >= 3
    tables = {t.GetName() for t in scene.GetNodesByClass("vtkMRMLTableNode")}
    assert namespace["features"].GetName() in tables
    assert namespace["features"].GetNumberOfRows() > 5
    prediction = namespace["out"]["table"]
    assert prediction.GetName() in tables
    assert namespace["out"]["result"]["endpoint"] == "survival"
    assert namespace["out"]["chart"] is not None


# ---- (c) the README's command-line quick start


def _commands(block: str) -> list:
    lines = [ln.split("#", 1)[0].strip() for ln in block.splitlines()]
    return [shlex.split(ln) for ln in lines if ln]


def test_readme_quick_start_fast_variant_runs(tmp_path):
    text = README.read_text(encoding="utf-8")
    full = _commands(_block_after(text, "quick-start"))
    fast = _commands(_block_after(text, "quick-start-fast"))
    assert [c[:2] for c in full] == [c[:2] for c in fast], "the fast variant must run the same subcommands"
    assert len(full) == 3 and all(c[0] == "cmrrisk" for c in full + fast)
    for cmd in fast:
        res = subprocess.run([sys.executable, "-m", "cmrrisk", *cmd[1:]], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}"
    outs = [Path(tmp_path, c[c.index("--out") + 1]) for c in fast]
    assert (outs[0] / "manifest.csv").is_file()
    assert outs[1].is_file() and outs[1].stat().st_size > 0
    assert (outs[2] / "checksums.json").is_file() and (outs[2] / "metrics.json").is_file()


# ---- (d) links and benchmark files


def _markdown_files():
    return [README, ROOT / "CHANGELOG.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def test_every_benchmark_json_named_in_validation_exists():
    text = (DOCS / "validation.md").read_text(encoding="utf-8")
    named = set(re.findall(r"bench/results/[\w.\-]+\.json", text))
    assert len(named) >= 10
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, f"docs/validation.md names missing files: {missing}"


def _anchors(md: Path) -> set:
    """GitHub-style anchors of a markdown file's headings."""
    text = FENCE.sub("", md.read_text(encoding="utf-8"))
    out = set()
    for title in re.findall(r"^#+ +(.+?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower().replace("`", ""))
        out.add(slug.replace(" ", "-"))
    return out


def test_every_local_link_resolves():
    broken = []
    for md in _markdown_files():
        if not md.is_file():
            broken.append(f"{md.relative_to(ROOT)} (the file itself)")
            continue
        text = FENCE.sub("", md.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file_part, _, anchor = target.partition("#")
            path = (md.parent / file_part).resolve()
            if not path.exists():
                broken.append(f"{md.relative_to(ROOT)} -> {target}")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{md.relative_to(ROOT)} -> {target} (no such heading)")
    assert not broken, "broken links: " + "; ".join(broken)


def test_example_cohort_manifest_is_valid():
    from cmrrisk.manifest import read_manifest

    man = read_manifest(str(DOCS / "examples" / "cohort.csv"), check_paths=False)
    assert len(man.rows) >= 3
    assert {"cine_ed", "cine_es", "lge", "time", "event"} <= set(man.columns)

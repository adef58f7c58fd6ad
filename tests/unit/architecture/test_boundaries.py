"""DESIGN.md: producer, stream_processors, sink and api never import each other; schemas imports
none of them. Only cli/ composes parts."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PARTS = ["producer", "stream_processors", "sink", "api"]


def imported_parts(path: Path, own: str, package: tuple[str, ...] | None = None) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    pkg = package or path.parent.relative_to(ROOT).parts
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                names = [".".join(("agentstream",) + tuple(base) + ((node.module,) if node.module else ()))]
            else:
                names = [node.module or ""]
        for name in names:
            parts = name.split(".")
            if parts[0] == "agentstream" and len(parts) > 1:
                found.add(parts[1])
            elif parts[0] in PARTS + ["cli"]:
                found.add(parts[0])
    return found - {own}


@pytest.mark.parametrize("part", PARTS + ["schemas"])
def test_part_imports_only_schemas(part):
    offenders = []
    for path in sorted((ROOT / part).rglob("*.py")):
        bad = imported_parts(path, part) - {"schemas"}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_no_utils_modules():
    found = [p for d in PARTS + ["schemas", "cli"] for p in (ROOT / d).rglob("util*.py")]
    assert not found, "give utils' contents homes named for what they own"


def test_checker_sees_cross_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from agentstream.api import app\nfrom ..producer import Tracer\n"
                     "import agentstream.schemas\nfrom . import rows\n")
    assert imported_parts(probe, "sink", package=("sink",)) == {"api", "producer", "schemas"}

"""An ``agentstream`` package mixing one part at an older commit with the rest of this checkout,
for benches that run a before and an after arm side by side (bench/sdk_cpu.py,
bench/processors_ab.py): put ``where`` first on ``PYTHONPATH`` and ``import agentstream`` gives
the older part.

    tree = mixed_tree("8e8759e", "producer", work / "before")
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("schemas", "producer", "stream_processors", "sink", "api", "cli")


def mixed_tree(ref: str, part: str, where: Path) -> Path:
    """``where``/agentstream: ``ref``'s ``part``/ (its C extensions built, with the headers beside
    them), every other part linked to this checkout; returns ``where``."""
    pkg = where / "agentstream"
    pkg.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, part], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive, check=True)
    for other in PARTS:
        if other != part:
            (pkg / other).symlink_to(ROOT / other)
    (pkg / "__init__.py").write_text("")
    sources = sorted(p.name for p in (pkg / part).glob("*.c"))
    if sources:
        exts = ", ".join(f"Extension('agentstream.{part}.{Path(s).stem}', ['{part}/{s}'], "
                         f"extra_compile_args=['-O2'])" for s in sources)
        script = ("from setuptools import Extension, setup\n"
                  f"setup(name='baseline', ext_modules=[{exts}], packages=[],\n"
                  "      script_args=['build_ext', '--inplace', '--build-temp', 'build-tmp'])\n")
        # build_ext --inplace writes agentstream/<part>/<name>.so under the working directory
        (pkg / "agentstream" / part).mkdir(parents=True)
        out = subprocess.run([sys.executable, "-c", script], cwd=pkg, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"building {ref}'s {part} C extensions failed:\n"
                               f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
        for built in pkg.glob(f"agentstream/{part}/*.so"):
            shutil.move(str(built), str(pkg / part / built.name))
        for scratch in ("agentstream", "build", "build-tmp"):
            shutil.rmtree(pkg / scratch, ignore_errors=True)
    return where

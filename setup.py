"""Maps each top-level folder to ``agentstream.<folder>``.

Subpackages are discovered so that a new folder with an ``__init__.py`` needs no edit here.
"""
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
PARTS = ["schemas", "producer", "stream_processors", "sink", "api", "cli"]

packages: list[str] = []
package_dir: dict[str, str] = {}
for part in PARTS:
    # Every importable-named folder is listed, data-only ones (sink/migrations, api/static/...)
    # too: setuptools warns at length about each folder it could import but was not told about.
    for folder in sorted([ROOT / part, *(p for p in (ROOT / part).rglob("*") if p.is_dir())]):
        rel = folder.relative_to(ROOT)
        if not all(s.isidentifier() for s in rel.parts) or "__pycache__" in rel.parts:
            continue
        name = "agentstream." + ".".join(rel.parts)
        packages.append(name)
        package_dir[name] = str(rel)

# Data files travel with the package that holds them (schemas, migrations, price table,
# dashboard assets), so a non-editable install works the same as the checkout.
DATA = ["*.json", "*.avsc", "*.sql", "*.html", "*.js", "*.css", "*.svg", "*.png", "*.ico",
        "*.txt", "*.jsonl", "LICENSE*"]
package_data = {name: DATA for name in packages}
package_data["agentstream.schemas"] = DATA + ["avro/*.avsc"]
package_data["agentstream.sink"] = DATA + ["migrations/*.sql"]
package_data["agentstream.api"] = DATA + ["static/**/*", "templates/*"]

# The SDK's step hot path in C (producer/_speedups.c). Optional: without a compiler the build
# goes on and the SDK runs its pure-Python core (producer/step.py), which has the same behaviour.
SPEEDUPS = Extension("agentstream.producer._speedups", ["producer/_speedups.c"], optional=True,
                     extra_compile_args=["-O2"])

# The SDK's per-event encoder in C (producer/_wirecore.c), optional the same way: without it
# producer/wire.py encodes every event, byte for byte the same.
WIRECORE = Extension("agentstream.producer._wirecore", ["producer/_wirecore.c"], optional=True,
                     extra_compile_args=["-O2"])

# The processors' field reader (stream_processors/_fieldreader.c), optional the same way: without
# it the program runs in stream_processors/_fieldreader_py.py, with the same results.
FIELDREADER = Extension("agentstream.stream_processors._fieldreader", ["stream_processors/_fieldreader.c"],
                        depends=["stream_processors/_fieldreader_text.h"],  # in the sdist, rebuilt on change
                        optional=True, extra_compile_args=["-O2"])

# The sink's Avro -> RowBinary transcoder (sink/_rowbinary.c), optional the same way: without it
# the fast path inserts its Avro containers as they are, into the same staging tables.
ROWBINARY = Extension("agentstream.sink._rowbinary", ["sink/_rowbinary.c"], depends=["sink/_avro_long.h"],
                      optional=True, extra_compile_args=["-O2"])

# The sink's direct path (sink/_eventrows.c): Event records -> rows of events, no staging view.
# Optional the same way: without it the fast path goes through the staging tables' views.
EVENTROWS = Extension("agentstream.sink._eventrows", ["sink/_eventrows.c"],
                      depends=["sink/_eventrows_read.h", "sink/_eventrows_text.h", "sink/_avro_long.h"],  # in the sdist, rebuilt on change
                      optional=True, extra_compile_args=["-O2"])

setup(packages=packages, package_dir=package_dir, package_data=package_data,
      ext_modules=[SPEEDUPS, WIRECORE, FIELDREADER, ROWBINARY, EVENTROWS])

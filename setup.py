"""What pyproject.toml cannot say: the package list and the compiled extensions.

The connectors live in the repository's top-level folders taps/, targets/ and state/, and are
installed as `dpone.taps`, `dpone.targets` and `dpone.state` (dpone/ holds a link to each), so
names as common as `state` never collide with another distribution's in site-packages. The
extensions (targets/postgres/copyrows/, taps/postgres/copyjson/, dpone_drivers/kafkafast/,
dpone_runner/blockscan/) are
optional: where they cannot be built (no C compiler), the connectors take their pure-Python paths.
"""

from pathlib import Path

from setuptools import Extension, find_namespace_packages, find_packages, setup

setup(
    packages=find_packages(include=["dpone_protocol*", "dpone_drivers*", "dpone_runner*"])
    + find_namespace_packages(include=["dpone.*"], exclude=["*__pycache__*", "*.copyrows", "*.copyjson"]),
    ext_modules=[
        Extension(
            "dpone.targets.postgres._copyrows",
            sources=sorted(str(p) for p in Path("targets/postgres/copyrows").glob("*.c")),
            depends=["targets/postgres/copyrows/copyrows.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            optional=True,
        ),
        Extension(
            "dpone.taps.postgres._copyjson",
            # The target's encoder's byte buffer, shared.
            sources=sorted(str(p) for p in Path("taps/postgres/copyjson").glob("*.c")),
            include_dirs=["taps/postgres/copyjson", "targets/postgres/copyrows"],
            depends=["taps/postgres/copyjson/copyjson.h", "targets/postgres/copyrows/copyrows.h"],
            libraries=["dl"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            optional=True,
        ),
        Extension(
            "dpone_runner._blockscan",
            sources=["dpone_runner/blockscan/blockscan.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            optional=True,
        ),
        Extension(
            "dpone_drivers._kafkafast",
            # The COPY encoder's JSON scanner validates values here too.
            sources=[
                *sorted(str(p) for p in Path("dpone_drivers/kafkafast").glob("*.c")),
                "targets/postgres/copyrows/json_scan.c",
            ],
            include_dirs=["dpone_drivers/kafkafast", "targets/postgres/copyrows"],
            depends=[*map(str, Path("dpone_drivers/kafkafast").glob("*.h")), "targets/postgres/copyrows/copyrows.h"],
            libraries=["dl"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            optional=True,
        ),
    ],
)

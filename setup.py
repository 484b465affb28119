"""The compiled part of dpone: target-postgres's COPY row encoder (targets/postgres/copyrows/).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no C compiler), target-postgres loads through its pure-Python path instead.
"""

from pathlib import Path

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "targets.postgres._copyrows",
            sources=sorted(str(p) for p in Path("targets/postgres/copyrows").glob("*.c")),
            depends=["targets/postgres/copyrows/copyrows.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)

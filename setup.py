"""The compiled part of dpone: target-postgres's COPY row encoder.

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no C compiler), target-postgres loads through its pure-Python path instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "targets.postgres._copyrows",
            sources=["targets/postgres/_copyrows.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            optional=True,
        )
    ]
)

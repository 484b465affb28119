"""The reference tools' venvs under bench/.work/: each tool in its own, with the Python it needs.

install() creates a venv with a given interpreter and pip-installs a package into it, once;
version_of() reads the version that got installed. Interpreters come from pyenv. reference_login()
is the start of every reference tool's config.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.paths import WORK_DIR, shown, tail
from bench.pg_server import PgServer

PYENV = Path.home() / ".pyenv" / "versions"
TOOLS_VENV = WORK_DIR / "venv-tools"  # py-spy, for the --profile modes


def pyenv_python(version: str) -> Path:
    return PYENV / version / "bin" / "python"


def old_python() -> Path:
    """Python 3.9 (else 3.8) from pyenv, for the reference tools that need an older interpreter."""
    for version in ("3.9.18", "3.8.18"):
        candidate = pyenv_python(version)
        if candidate.exists():
            return candidate
    return pyenv_python("3.9.18")


def install(venv: Path, python: Path, package: str, executable: str) -> str | None:
    """Create the venv and pip install the package unless `executable` is there already; None on success."""
    exe = venv / "bin" / executable
    if exe.exists():
        return None
    if not python.exists():
        return f"no interpreter at {python}"
    log = WORK_DIR / f"install-{venv.name}.log"
    print(f"installing {package} into {shown(venv)} (log: {shown(log)}) ...", flush=True)
    with log.open("w") as fh:
        for argv in (
            [str(python), "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
            [str(venv / "bin" / "python"), "-m", "pip", "install", package],
        ):
            if subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                return f"`{' '.join(argv[-3:])}` failed; last lines of {log}:\n{tail(log, 1500)}"
    return None if exe.exists() else f"{package} installed no {executable} executable"


def version_of(venv: Path, dist: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def reference_login(server: PgServer) -> dict[str, Any]:
    """Host, port, user and a password: their config checks require one; the server trusts local connections."""
    return {"host": server.host, "port": server.port, "user": server.user, "password": "unused"}

"""Names, checks and rendering for `dpone connectors new tap|target NAME`."""

from __future__ import annotations

import keyword
import os
import re
import sys
import tomllib
import types
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from dpone_protocol.about import meltano_plugin_settings
from dpone_protocol.errors import ConfigError
from dpone_protocol.settings import Setting
from dpone_runner.scaffold import project_files

# kind -> (repository folder, connector module, meltano.yml plugin list)
KINDS = {"tap": ("taps", "tap.py", "extractors"), "target": ("targets", "target.py", "loaders")}
_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_MAX_NAME = 32  # keeps cli.py's import of the class within the line length
_RESERVED = {"framework"}  # taps/framework and targets/framework are the frameworks themselves


@dataclass(frozen=True, slots=True)
class Names:
    kind: str
    name: str  # as given: `my-api`
    package: str  # `my_api`: taps/my_api, dpone.taps.my_api
    executable: str  # `tap-my-api`: the console script and the Meltano plugin
    classname: str  # `MyApi`: MyApiTap, MyApiSink


@dataclass(frozen=True, slots=True)
class Written:
    root: Path
    paths: list[Path]  # relative to root: created files, then edited ones
    next_steps: str


def connector_names(kind: str, name: str) -> Names:
    if kind not in KINDS:
        raise ConfigError(f"connector kind must be tap or target, got {kind!r}")
    for prefix in ("tap-", "target-", "tap_", "target_"):
        if name.startswith(prefix):
            bare = name[len(prefix) :]
            # The prefix says which kind was meant: it may not be the one asked for.
            meant = prefix.rstrip("-_")
            hint = f": `dpone connectors new {meant} {bare}`" if bare else ""
            raise ConfigError(f"name {name!r}: give the name without the {prefix!r} prefix{hint}")
    if not _NAME.fullmatch(name) or len(name) > _MAX_NAME:
        raise ConfigError(
            f"name {name!r} is not valid: use lowercase letters, digits, and - or _ between them, starting with a "
            f"letter, at most {_MAX_NAME} characters (e.g. my-api)"
        )
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in _RESERVED:
        raise ConfigError(f"name {name!r} is reserved (it would be the package {KINDS[kind][0]}/{package})")
    classname = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    return Names(kind, name, package, f"{kind}-{name}", classname)


def is_checkout(path: Path) -> bool:
    try:
        project = tomllib.loads((path / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    is_dpone = project.get("project", {}).get("name") == "dpone"
    return is_dpone and (path / "taps").is_dir() and (path / "targets").is_dir()


def checkout_root(root: Path | None) -> Path:
    if root is not None:
        if not is_checkout(root):
            raise ConfigError(f"--root {root}: not a dpone checkout (no dpone pyproject.toml, taps/ and targets/)")
        return root
    start = Path.cwd()
    for candidate in (start, *start.parents):
        if is_checkout(candidate):
            return candidate
    raise ConfigError(f"{start} is not inside a dpone checkout: run this there, or pass --root DIR")


def lazy_imports(names: Names) -> str:
    """cli.py's imports inside main(), in the order ruff's isort wants (it depends on the name)."""
    folder, module, _ = KINDS[names.kind]
    own = f"dpone.{folder}.{names.package}.{module[:-3]}"
    framework = f"dpone.{folder}.framework.{names.kind}_cli"
    lines = {
        own: f"from {own} import {names.classname}{names.kind.capitalize()}",
        framework: f"from {framework} import run",
    }
    first, second = sorted(lines, key=str.lower)
    return (
        f"    {lines[first]}  # noqa: PLC0415 - keep --help fast: nothing loads before main() runs\n"
        f"    {lines[second]}  # noqa: PLC0415"
    )


def _template(kind: str, name: str) -> Template:
    return Template(resources.files("dpone_runner.scaffold.templates").joinpath(f"{kind}_{name}.tmpl").read_text())


def _load_class(source: str, filename: str, classname: str) -> Any:
    """The connector class of a rendered module, without writing it anywhere first."""
    module_name = f"_dpone_scaffold_{classname}"
    module = types.ModuleType(module_name)
    module.__file__ = filename
    sys.modules[module_name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our template, rendered just now
    finally:
        del sys.modules[module_name]
    return module.__dict__[classname]


def _cell(value: Any) -> str:
    return "" if value is None else f"`{str(value).lower() if isinstance(value, bool) else value}`"


def settings_table(settings: tuple[Setting, ...]) -> str:
    rows = ["| Setting | Type | Default | Description |", "|---|---|---|---|"]
    for s in settings:
        text = s.description.replace("|", "\\|") + (" Required." if s.required else "")
        rows.append(f"| `{s.name}` | {s.kind} | {_cell(s.default)} | {text.strip()} |")
    return "\n".join(rows)


def meltano_entry(names: Names, cls: Any) -> dict[str, Any]:
    caps = cls.capabilities
    capabilities = list(caps) if isinstance(caps, tuple) else list(caps.singer_capabilities())
    settings = meltano_plugin_settings(cls.all_settings())
    entry: dict[str, Any] = {
        "name": names.executable,
        "namespace": names.executable.replace("-", "_"),
        "executable": names.executable,
        # Meltano expands it when it installs: a copy of the project installs its own sources.
        "pip_url": "-e ${MELTANO_PROJECT_ROOT}",
        "capabilities": capabilities,
    }
    if "settings_group_validation" in settings:
        entry["settings_group_validation"] = settings["settings_group_validation"]
    entry["settings"] = settings["settings"]
    return entry


def _refuse_existing(names: Names, root: Path, files: list[Path], pyproject: str, meltano: str) -> None:
    folder = KINDS[names.kind][0]
    package = Path(folder, names.package)
    taken = [str(p) for p in [package, *files] if (root / p).exists() and package not in p.parents]
    if taken:
        raise ConfigError(f"{names.executable} exists already in {root}: {', '.join(taken)}")
    exe = names.executable
    for table in (project_files.SCRIPTS, project_files.CONNECTORS_TABLE):
        if exe in project_files.toml_keys(pyproject, table):
            raise ConfigError(f"{exe} exists already: pyproject.toml {table} declares it")
    if exe in project_files.meltano_plugin_names(meltano):
        raise ConfigError(f"{exe} exists already: meltano.yml declares a plugin of that name")
    from importlib.metadata import entry_points  # noqa: PLC0415

    installed = entry_points(group="console_scripts", name=exe)
    other = [ep.dist.name for ep in installed if ep.dist is not None and ep.dist.name != "dpone"]
    if other:
        raise ConfigError(f"{exe} is the name of a command installed by {other[0]}: choose another name")


def new_connector(kind: str, name: str, root: Path | None = None) -> Written:
    names = connector_names(kind, name)
    root = checkout_root(root)
    folder, module, plugin_kind = KINDS[kind]
    package = Path(folder, names.package)
    files = {  # path -> template (None: an empty file)
        package / "__init__.py": None,
        package / "cli.py": "cli.py",
        package / module: "module.py",
        Path("tests", "contract", f"test_{kind}_{names.package}.py"): "test.py",
        Path("docs", "connectors", f"{names.executable}.md"): "doc.md",
    }
    pyproject_path, meltano_path = root / "pyproject.toml", root / "meltano.yml"
    pyproject, meltano = pyproject_path.read_text(), meltano_path.read_text()
    _refuse_existing(names, root, list(files), pyproject, meltano)

    values = {
        "name": names.name,
        "package": names.package,
        "executable": names.executable,
        "classname": names.classname,
        "lazy_imports": lazy_imports(names),
    }
    rendered = {
        path: _template(kind, tmpl).substitute(values) if tmpl else ""
        for path, tmpl in files.items()
        if tmpl != "doc.md"
    }
    cls = _load_class(rendered[package / module], str(root / package / module), names.classname + kind.capitalize())
    doc = next(path for path, tmpl in files.items() if tmpl == "doc.md")
    rendered[doc] = _template(kind, "doc.md").substitute(values, settings_table=settings_table(cls.all_settings()))
    dotted = f"dpone.{folder}.{names.package}"
    pyproject = project_files.add_toml_entries(
        pyproject,
        {
            project_files.SCRIPTS: {names.executable: f"{dotted}.cli:main"},
            project_files.CONNECTORS_TABLE: {names.executable: f"{dotted}.{module[:-3]}:{cls.__name__}"},
        },
    )
    meltano = project_files.add_meltano_plugin(meltano, plugin_kind, meltano_entry(names, cls))

    _write(root, rendered, {pyproject_path: pyproject, meltano_path: meltano})
    test = next(path for path, tmpl in files.items() if tmpl == "test.py")
    steps = (
        "next:\n"
        f"  .venv/bin/pytest -q {test}\n"
        f"  .venv/bin/pip install -e .   (installs the {names.executable} command)\n"
        f"  then edit {package / module} to {'read your source' if kind == 'tap' else 'write to your destination'},"
        f" and {doc} to say what it does\n"
    )
    return Written(root, [*rendered, Path("pyproject.toml"), Path("meltano.yml")], steps)


def _write(root: Path, created: dict[Path, str], edited: dict[Path, str]) -> None:
    """Create the new files and replace the edited ones; on any failure, leave the checkout as it was."""
    made: list[Path] = []
    dirs: list[Path] = []
    originals = {path: path.read_bytes() for path in edited}
    try:
        for rel, text in created.items():
            path = root / rel
            for parent in reversed(path.parents):
                if not parent.exists():
                    parent.mkdir()
                    dirs.append(parent)
            with path.open("x") as fh:  # never over a file that appeared since the checks
                fh.write(text)
            made.append(path)
        for path, text in edited.items():
            partial = path.with_name(f".{path.name}.dpone-new")
            partial.write_text(text)
            os.replace(partial, path)
    except BaseException:
        for path, data in originals.items():
            path.write_bytes(data)
        for path in reversed(made):
            path.unlink(missing_ok=True)
        for directory in reversed(dirs):
            directory.rmdir()
        raise

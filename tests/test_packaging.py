"""pyproject.toml declares what glamor imports: a `pip install glamor` elsewhere gets every
third-party package its modules import (the simulators of the Atari and Control suites are the
`envs` extra: they are imported only when one of those environments is made)."""

import ast
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
DIST_NAMES = {"PIL": "pillow", "ale_py": "ale-py", "OpenGL": "pyopengl"}  # import name -> distribution name, where they differ
OPTIONAL = {"ale_py", "dm_control", "mujoco", "OpenGL"}  # the `envs` extra


def _requirement_names(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        for stop in "<>=!~[; ":
            requirement = requirement.split(stop)[0]
        names.add(requirement.lower().replace("_", "-"))
    return names


def _imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "glamor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"glamor", "__future__"}


def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = _requirement_names(project["dependencies"])
    extra = _requirement_names(project["optional-dependencies"]["envs"])
    imported = _imported_top_level_modules()
    assert {"torch", "numpy", "PIL"} <= imported  # the scan finds imports at all
    for module in sorted(imported):
        dist = DIST_NAMES.get(module, module).lower().replace("_", "-")
        where = extra if module in OPTIONAL else required
        assert dist in where, f"glamor imports {module} but pyproject.toml does not declare {dist} " \
                              f"({'the envs extra' if module in OPTIONAL else 'dependencies'})"

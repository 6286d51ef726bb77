"""Imports point one way: each module imports only its own layer and the layers below it
(the layers are described in docs/architecture.md).

The walk reads every module of ``src/delayprop`` with ``ast`` and checks every ``import`` and
``from ... import`` of a delayprop module, at the top of a file or inside a function (a lazy
import is still a dependency), including those under ``if TYPE_CHECKING``.  Importing
``a.b.c`` runs the ``__init__`` of ``a.b`` first, so it counts as an import of ``a.b`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "delayprop"

#: layer of each module (longest matching dotted prefix wins), lowest first
LAYERS: dict[str, int] = {
    # foundation: no engine, no module layer
    "delayprop._util": 0,
    "delayprop.validation": 0,
    "delayprop.spikes": 0,
    "delayprop.init": 0,
    "delayprop.delays": 0,
    "delayprop.regularization": 0,
    "delayprop.losses": 0,
    "delayprop.data": 0,
    # compute kernels
    "delayprop.kernels": 1,
    # engines: time grid (grid and precise mode), exact (EventProp and timing backward)
    "delayprop.functional": 2,
    "delayprop.exact": 2,
    # modules and their options
    "delayprop.nn": 3,
    "delayprop.options": 3,
    # training methods
    "delayprop.methods": 4,
    # tools built on modules and methods
    "delayprop.verify": 5,
    "delayprop.hardware": 5,
    "delayprop.nir": 5,
    "delayprop.nir_norse": 5,
    "delayprop.bench": 5,
    # training
    "delayprop.config": 6,
    "delayprop.training": 6,
    # application
    "delayprop.plotting": 7,
    "delayprop.cli": 7,
    "delayprop.__main__": 7,
    "delayprop": 7,
}

#: imports against the direction, each with its reason: (importer, imported); none today
ALLOWED: set[tuple[str, str]] = set()


def layer_of(module: str) -> int:
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)")


def module_name(path: Path) -> tuple[str, bool]:
    """Dotted name of a source file and whether it is a package ``__init__``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_module(dotted: str) -> bool:
    path = SRC / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(path: Path) -> list[tuple[str, int, bool]]:
    """(delayprop module, line, whether it is only run as a package ``__init__``) of every
    import in the file, with the packages whose ``__init__`` the import runs."""
    name, is_pkg = module_name(path)
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[tuple[str, bool]] = []
        if isinstance(node, ast.Import):
            targets = [(a.name, False) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                # ``from pkg import sub`` imports the submodule; ``from pkg import name``
                # uses what the package's __init__ defines
                targets.append((sub, False) if _is_module(sub) else (mod, False))
        for target, _ in targets:
            if target == "delayprop" or target.startswith("delayprop."):
                parts = target.split(".")
                found += [(".".join(parts[:k]), node.lineno, k < len(parts))
                          for k in range(1, len(parts) + 1)]  # fmt: skip
    return found


def violations(files: list[Path]) -> list[str]:
    out = []
    for path in files:
        name, _ = module_name(path)
        own = layer_of(name)
        for target, line, only_init in imported_modules(path):
            if target == name or (only_init and name.startswith(target + ".")):
                continue  # a package around the importer: its __init__ already runs
            if layer_of(target) > own and (name, target) not in ALLOWED:
                out.append(f"{path.relative_to(SRC)}:{line}: {name} (layer {own}) imports "
                           f"{target} (layer {layer_of(target)})")  # fmt: skip
    return out


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in source_files():
        layer_of(module_name(path)[0])


def test_imports_point_one_way():
    assert violations(source_files()) == []


@pytest.mark.parametrize(
    "relpath, source, imported",
    [
        # an engine importing the module layer, lazily inside a function
        ("exact/bad.py", "def f():\n    from ..nn import LIF\n    return LIF\n", "delayprop.nn"),
        # a kernel importing a name from the package's __init__ (which imports every layer)
        ("kernels/bad.py", "from delayprop import LIF\n", "delayprop"),
        # under TYPE_CHECKING
        ("nn_bad.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    from delayprop.training import trainer\n", "delayprop.training"),
    ],
)
def test_the_walk_finds_an_import_against_the_direction(tmp_path, monkeypatch, relpath, source,
                                                         imported):  # fmt: skip
    root = tmp_path / "delayprop"
    for pkg in ("", "exact", "kernels", "nn", "training"):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    (root / "training" / "trainer.py").write_text("")
    bad = root / relpath
    bad.write_text(source)
    monkeypatch.setattr(f"{__name__}.SRC", tmp_path)
    monkeypatch.setitem(LAYERS, "delayprop.nn_bad", LAYERS["delayprop.nn"])
    found = violations([bad])
    assert found and all(f"imports {imported}" in f for f in found), found


@pytest.mark.parametrize(
    "importer, imported",
    sorted(ALLOWED),
)
def test_allowed_exceptions_are_still_needed(importer, imported):
    """An exception that no longer occurs is removed from ALLOWED."""
    path = SRC / Path(*importer.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert imported in {t for t, _, _ in imported_modules(path)}

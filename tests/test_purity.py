"""The core stays pure and the packages stay layered (DESIGN.md section 1), checked on the source."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = ["lockstep", "replay", "peer", "tools"]
FORBIDDEN_MODULES = {
    "time", "random", "socket", "threading", "pygame", "os", "sys", "datetime", "secrets",
    "select", "selectors", "asyncio", "subprocess", "multiprocessing", "io", "pathlib", "math",
}  # fmt: skip
FORBIDDEN_CALLS = {"float", "hash", "id", "set", "frozenset", "open", "input", "print", "vars", "globals"}


def modules(package):
    return sorted((ROOT / package).rglob("*.py"))


def imported_roots(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def impurities(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for lineno, root in imported_roots(tree):
        if root in FORBIDDEN_MODULES:
            yield f"{path.name}:{lineno} imports {root}"
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            yield f"{where} float literal {node.value!r}"
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            yield f"{where} true division"
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS
        ):
            yield f"{where} calls {node.func.id}()"
        elif isinstance(node, (ast.Set, ast.SetComp)):
            yield f"{where} builds a set (iteration order is not part of determinism)"


@pytest.mark.parametrize("path", modules("lockstep"), ids=lambda p: p.name)
def test_simulation_modules_are_pure(path):
    assert list(impurities(path)) == []


def test_the_purity_check_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time\nfrom random import randint\nx = 1 / 2\ny = 0.5\nz = hash('a')\nfor i in {1, 2}: pass\n"
    )
    found = "\n".join(impurities(bad))
    for needle in (
        "imports time",
        "imports random",
        "true division",
        "float literal",
        "calls hash",
        "builds a set",
    ):
        assert needle in found


@pytest.mark.parametrize("package", LAYERS)
def test_packages_import_only_packages_to_their_left(package):
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    violations = []
    for path in modules(package):
        for lineno, root in imported_roots(ast.parse(path.read_text())):
            if root in LAYERS and root not in allowed:
                violations.append(f"{path.relative_to(ROOT)}:{lineno} imports {root}")
    assert violations == []


def test_the_core_never_imports_pygame_at_run_time():
    """Rendering reads states; only front ends import it, never the core or the headless tools."""
    for path in modules("lockstep") + modules("replay"):
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] == "pygame" for n in names), f"{path} imports pygame at top level"


def test_only_the_transport_imports_socket():
    """All network I/O goes through peer/transport.py (DESIGN.md section 5); everything else is testable."""
    transport = ROOT / "peer" / "transport.py"
    offenders = [
        f"{path.relative_to(ROOT)}:{lineno}"
        for package in LAYERS
        for path in modules(package)
        if path != transport
        for lineno, root in imported_roots(ast.parse(path.read_text()))
        if root in ("socket", "socketserver")
    ]
    assert offenders == []

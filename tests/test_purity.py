"""The core stays pure and the packages stay layered (docs/design.md, "Layers"), checked on the source."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = ["lockstep", "replay", "peer", "tools"]
FORBIDDEN_MODULES = {
    "time", "random", "socket", "threading", "pygame", "os", "sys", "datetime", "secrets",
    "select", "selectors", "asyncio", "subprocess", "multiprocessing", "io", "pathlib", "math",
}  # fmt: skip
FORBIDDEN_CALLS = {
    "float", "hash", "id", "set", "frozenset", "open", "input", "print", "vars", "globals", "round",
}  # fmt: skip
# The struct functions whose first argument is a format, and the format codes of floats.
STRUCT_FORMAT_CALLS = {"Struct", "pack", "pack_into", "unpack", "unpack_from", "iter_unpack", "calcsize"}
FLOAT_FORMAT_CODES = set("efd")
FORMAT_CHARACTERS = set("@=<>! 0123456789xcbB?hHiIlLqQnNefdspP")


def modules(package):
    return sorted((ROOT / package).rglob("*.py"))


def imported_roots(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def is_whole_exponent(node: ast.expr) -> bool:
    """A literal non-negative int: `x ** 2` stays an int; any other exponent may make a float."""
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0


def struct_names(tree: ast.Module) -> set[str]:
    """Names that call struct's format functions: `struct.pack` style needs `struct`, plus any
    `from struct import pack` names."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "struct":
            names |= {alias.asname or alias.name for alias in node.names if alias.name in STRUCT_FORMAT_CALLS}
    return names


def format_strings(node: ast.AST, assigned: dict[str, ast.expr], seen: frozenset[str] = frozenset()):
    """The string constants a struct format may be built from: those in the expression, following
    module-level names (such as a dict of per-field codes joined into the format), and skipping
    dict keys, `len(...)` and strings that cannot be (part of) a format, such as most field names."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str) and node.value and set(node.value) <= FORMAT_CHARACTERS:
            yield node.value
    elif isinstance(node, ast.Name):
        if node.id in assigned and node.id not in seen:
            yield from format_strings(assigned[node.id], assigned, seen | {node.id})
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from format_strings(value, assigned, seen)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return  # a repeat count, as in "q" * len(FIELDS): not part of the format
    else:
        for child in ast.iter_child_nodes(node):
            yield from format_strings(child, assigned, seen)


def float_struct_format(call: ast.Call, from_struct: set[str], assigned: dict[str, ast.expr]) -> bool:
    func = call.func
    is_struct = (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "struct"
        and func.attr in STRUCT_FORMAT_CALLS
    ) or (isinstance(func, ast.Name) and func.id in from_struct)
    if not is_struct or not call.args:
        return False
    return any(FLOAT_FORMAT_CODES & set(text) for text in format_strings(call.args[0], assigned))


def impurities(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for lineno, root in imported_roots(tree):
        if root in FORBIDDEN_MODULES:
            yield f"{path.name}:{lineno} imports {root}"
    from_struct = struct_names(tree)
    assigned = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            yield f"{where} float literal {node.value!r}"
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            yield f"{where} true division"
        elif (
            isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and not is_whole_exponent(node.right)
        ):
            yield f"{where} ** with an exponent that is not a literal whole number (a float when negative)"
        elif (
            isinstance(node, ast.AugAssign)
            and isinstance(node.op, ast.Pow)
            and not is_whole_exponent(node.value)
        ):
            yield f"{where} **= with an exponent that is not a literal whole number (a float when negative)"
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS
        ):
            yield f"{where} calls {node.func.id}()"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "pow"
            and len(node.args) == 2
            and not is_whole_exponent(node.args[1])
        ):
            yield f"{where} calls pow() with an exponent that is not a literal whole number"
        elif isinstance(node, ast.Call) and float_struct_format(node, from_struct, assigned):
            yield f"{where} struct format with a float code (e, f or d)"
        elif isinstance(node, (ast.Set, ast.SetComp)):
            yield f"{where} builds a set (iteration order is not part of determinism)"


@pytest.mark.parametrize("path", modules("lockstep"), ids=lambda p: p.name)
def test_simulation_modules_are_pure(path):
    assert list(impurities(path)) == []


def test_the_purity_check_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import struct\n"
        "import time\n"
        "from random import randint\n"
        "from struct import pack as p\n"
        "x = 1 / 2\n"
        "y = 0.5\n"
        "z = hash('a')\n"
        "for i in {1, 2}: pass\n"
        "a = x ** -1\n"
        "a **= x\n"
        "b = pow(x, y)\n"
        "c = round(x)\n"
        "d = struct.Struct('<qd')\n"
        "_CODES = {'ball': 'f'}\n"
        "e = struct.Struct('<' + ''.join(_CODES.values()))\n"
        "f = p('<e', 0)\n"
    )
    found = list(impurities(bad))
    expected = {
        "bad.py:2 imports time",
        "bad.py:3 imports random",
        "bad.py:5 true division",
        "bad.py:6 float literal 0.5",
        "bad.py:7 calls hash()",
        "bad.py:8 builds a set",
        "bad.py:9 ** with an exponent",
        "bad.py:10 **= with an exponent",
        "bad.py:11 calls pow()",
        "bad.py:12 calls round()",
        "bad.py:13 struct format with a float code",
        "bad.py:15 struct format with a float code",
        "bad.py:16 struct format with a float code",
    }
    assert {e for e in expected if not any(f.startswith(e) for f in found)} == set(), found
    assert len(found) == len(expected), found


def test_the_purity_check_lets_integer_code_through(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        "import struct\n"
        "FIELDS = ('frame', 'speed', 'ball_x')\n"
        "_CODES = {'frame': 'q', 'rng': 'Q'}\n"
        "S = struct.Struct('<' + ''.join(_CODES.values()) + '8s' + 'q' * len(FIELDS))\n"
        "n = 2 ** 64 - 1\n"
        "m = 3\n"
        "m **= 2\n"
        "k = pow(m, -1, 7) + divmod(n, m)[0] + (1 << 5)\n"
        "def f(**kwargs): return dict(**kwargs)\n"
    )
    assert list(impurities(good)) == []


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
    """All network I/O goes through peer/transport.py; everything else is testable without a socket."""
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

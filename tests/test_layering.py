"""The import graph keeps its layers: read from the source, every import counted
(module level or inside a function; ``if TYPE_CHECKING:`` blocks excepted).

- The calls app's core (models, services, selectors, snapshots, lines, the runtime, the
  carriers) imports neither the API layer nor the apps that plug into it (recordings,
  streams, assets, the dashboard): they register through hooks instead.
- Its transports and its API may use other apps' public parts, but never each other's.
- No import circle runs through the services, the runtime or the engine hosts.
- The audio package imports no Django.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTERFACES = ("calls.api", "calls.transports", "calls.admin", "calls.management")
PLUGGED_IN = ("recordings", "streams", "assets", "dashboard")
API_LAYER = (
    "calls.api",
    "config.api",
    "rest_framework",
    "drf_spectacular",
    "djangorestframework_camel_case",
)


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, resolved to dotted names."""
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    source = ".".join([*base, child.module or ""]).strip(".")
                else:
                    source = child.module or ""
                found.add(source)
                # ``from calls.runtime import control`` imports a module too.
                found.update(f"{source}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def modules(package: str) -> dict[str, Path]:
    folder = ROOT / package.replace(".", "/")
    return {
        _name(path): path
        for path in folder.rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts
        and "migrations" not in path.relative_to(ROOT).parts
    }


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_the_calls_core_imports_no_api_layer_and_no_plugged_in_app() -> None:
    offences = [
        f"{name} imports {imported}"
        for name, path in modules("calls").items()
        if not _within(name, INTERFACES)
        for imported in sorted(imports_of(path))
        if _within(imported, API_LAYER + PLUGGED_IN)
    ]
    assert offences == []


def test_the_calls_interfaces_import_no_plugged_in_app_but_through_its_api() -> None:
    offences = [
        f"{name} imports {imported}"
        for name, path in modules("calls").items()
        if _within(name, ("calls.transports",))
        for imported in sorted(imports_of(path))
        if _within(imported, (*PLUGGED_IN, "calls.api"))
    ]
    assert offences == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_circle_runs_through_services_runtime_or_hosts() -> None:
    known = modules("calls")
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imports_of(path):
            # An import of a module also runs its packages' __init__.
            parts = imported.split(".")
            for end in range(1, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if candidate in known and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    core = ("calls.services", "calls.hosts", "calls.runtime")
    circles = [
        component
        for component in _cycles(graph)
        if any(_within(member, core) for member in component)
    ]
    assert circles == []


def test_the_audio_package_imports_no_django() -> None:
    offences = [
        f"{name} imports {imported}"
        for name, path in modules("audio").items()
        for imported in sorted(imports_of(path))
        if _within(imported, ("django", "channels", "rest_framework", "calls"))
    ]
    assert offences == []
    assert modules("audio"), "the audio package was not found"


def test_the_checker_sees_function_level_imports() -> None:
    """The rules above would pass vacuously if imports inside functions went unseen."""
    services = modules("calls")["calls.carriers.simulator.carrier"]
    assert "calls.services" in imports_of(services)

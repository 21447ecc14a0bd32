"""What source a module runs: its static import graph inside the package, and a hash of each module that
ignores what cannot change behaviour.

A module's hash is blake2b over ``ast.dump`` of its syntax tree with every docstring (module, class,
function) removed, without line/column attributes: comments, blank lines, formatting and docstrings
do not count; any change to code, including a string constant or a default, does. ``ast.dump``'s
output is fixed for one CPython minor version, and the package pins one (``requires-python``).

A module's closure is itself plus every package module it imports, transitively: every ``import`` /
``from ... import`` anywhere in the file (top level, inside functions, under ``TYPE_CHECKING``),
relative ones resolved. ``from pkg import name`` counts the submodule ``pkg.name`` when that is a module,
and the package (its ``__init__``) when ``name`` is defined there. A package's ``__init__`` that is only
run on the way to a submodule does not count: the package's ``__init__`` files define and re-export
names, with no side effect on what the submodule does (counting them would put every candidate source in
the closure of anything that validates a candidate frame). Imports by string (``importlib``) are not
seen. No Dagster here: ``hm_recsys.defs.code_versions`` maps assets to it.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from pathlib import Path

PACKAGE = "hm_recsys"
ROOT = Path(__file__).resolve().parent
NORMALISATION = "blake2b-8 of ast.dump(tree, include_attributes=False), docstrings removed (CPython 3.11)"


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def strip_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstring of the module and of every class and function removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised(source: str) -> str:
    return ast.dump(strip_docstrings(ast.parse(source)), include_attributes=False)


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def source_hash(source: str) -> str:
    """The hash of one module's source, blind to comments, docstrings and formatting."""
    return text_hash(normalised(source))


def combined_hash(module_hashes: dict[str, str]) -> str:
    """One hash for a set of modules (name -> hash), independent of the dict's order."""
    return text_hash("\n".join(f"{name} {h}" for name, h in sorted(module_hashes.items())))


class SourceGraph:
    """The package's modules read from ``root`` (through ``reader``, which tests replace to simulate an edit)."""

    def __init__(self, root: Path = ROOT, package: str = PACKAGE, reader: Callable[[Path], str] = read_text):
        self.root, self.package, self.reader = Path(root), package, reader
        self._trees: dict[str, ast.Module] = {}
        self._hashes: dict[str, str] = {}
        self._imports: dict[str, set[str]] = {}

    def path(self, module: str) -> Path | None:
        """The file of a package module (``pkg/__init__.py`` for a package), or None if it is not one."""
        parts = module.split(".")
        if parts[0] != self.package:
            return None
        base = self.root.joinpath(*parts[1:])
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    def is_package(self, module: str) -> bool:
        path = self.path(module)
        return path is not None and path.name == "__init__.py"

    def _tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            path = self.path(module)
            if path is None:
                raise ModuleNotFoundError(f"{module} is not a module of {self.package} under {self.root}")
            self._trees[module] = ast.parse(self.reader(path), filename=str(path))
        return self._trees[module]

    def module_hash(self, module: str) -> str:
        if module not in self._hashes:
            path = self.path(module)
            if path is None:
                raise ModuleNotFoundError(f"{module} is not a module of {self.package} under {self.root}")
            self._hashes[module] = source_hash(self.reader(path))
        return self._hashes[module]

    def imports(self, module: str) -> set[str]:
        """The package modules ``module`` imports directly."""
        if module in self._imports:
            return self._imports[module]
        found: set[str] = set()
        here = module if self.is_package(module) else module.rpartition(".")[0]
        for node in ast.walk(self._tree(module)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = here.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                subs = [f"{base}.{alias.name}" for alias in node.names if self.path(f"{base}.{alias.name}")]
                names = subs + ([base] if len(subs) < len(node.names) else [])  # a name defined in base itself
            else:
                continue
            for name in names:
                # "import a.b.c" may name an attribute path: keep the longest prefix that is a module
                parts = name.split(".")
                for i in range(len(parts), 0, -1):
                    if self.path(".".join(parts[:i])):
                        found.add(".".join(parts[:i]))
                        break
        found.discard(module)
        self._imports[module] = found
        return found

    def closure(self, module: str) -> list[str]:
        """``module`` and every package module it imports, transitively; sorted."""
        seen, todo = set(), [module]
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            todo.extend(self.imports(m) - seen)
        return sorted(seen)

"""Dataclass methods compiled at build time, with the rest of the layer's bytecode (cold start).

Before Python 3.13, ``@dataclass`` writes each method it adds (``__init__``, ``__repr__``,
``__eq__``, ``__hash__``, a frozen class's ``__setattr__``/``__delattr__``) as source text and
compiles it with ``exec`` when the class is created: ~0.7 ms a class, 15-30 ms of a function's
cold start for the 20-40 classes it loads. ``python -m clipedit.dataclass_code`` (the layer's
Makefile, with the runtime's Python) imports every module of the package, records those texts and
stores their code objects (``marshal``, one block per defining module) beside the package's
bytecode; ``install()``, run by the package's ``__init__``, lets ``dataclasses`` run the stored
code object for a text it has seen and compile any other as before. A module's block is unpacked
when that module defines its first dataclass, so a function pays only for the modules it imports. The whole text is the key and the file carries the interpreter's
bytecode magic number, so a stale or foreign table can only miss, never change a class. Where no
table was built (tests, the local stack) nothing changes.
"""

# No ``from __future__ import annotations`` here, on purpose: ``exec`` of a text compiles it with
# the calling frame's future flags, and the texts must compile exactly as from ``dataclasses``
# (which has none), or the generated methods' annotations would turn into strings.

import builtins
import marshal
import os
import sys
from typing import Any, Callable

TABLE_NAME = f"dataclass_code.{sys.implementation.cache_tag}.marshal"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _magic() -> bytes:
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


def table_path(package_dir: str = _PACKAGE_DIR) -> str:
    """Beside the package's bytecode: its ``__pycache__``, or the mirror under ``sys.pycache_prefix``
    when one is set (where Python then reads and writes .pyc)."""
    if sys.pycache_prefix:
        return os.path.join(sys.pycache_prefix, os.path.abspath(package_dir).lstrip(os.sep), TABLE_NAME)
    return os.path.join(package_dir, "__pycache__", TABLE_NAME)


def compiled(source: str) -> Any:
    # What ``exec(source)`` compiles inside ``dataclasses``: file name "<string>", no future flags.
    return compile(source, "<string>", "exec", dont_inherit=True)


def _module(globals: Any) -> Any:
    # dataclasses passes the defining module's namespace as the globals of every text it runs.
    return globals.get("__name__") if isinstance(globals, dict) else None


def exec_with(modules: dict[str, Any], builtin_exec: Callable[..., Any] = builtins.exec) -> Callable[..., Any]:
    """An ``exec`` that runs the stored code object for a known text and anything else unchanged.
    ``modules``: module name -> {text: code}, or that dict still marshalled (unpacked on first use)."""

    def exec(source: Any, globals: Any = None, locals: Any = None, /) -> Any:  # noqa: A001 - stands in for it
        if isinstance(source, str):
            name = _module(globals)
            texts = modules.get(name)
            if isinstance(texts, bytes):
                texts = modules[name] = marshal.loads(texts)
            if texts:
                source = texts.get(source, source)
        return builtin_exec(source, globals, locals)

    return exec


def recording_exec(modules: dict[str, Any], builtin_exec: Callable[..., Any] = builtins.exec) -> Callable[..., Any]:
    """An ``exec`` that adds each text's code object to ``modules[defining module]``, then runs the
    text as usual."""

    def exec(source: Any, globals: Any = None, locals: Any = None, /) -> Any:  # noqa: A001 - stands in for it
        if isinstance(source, str):
            modules.setdefault(_module(globals), {})[source] = compiled(source)
        return builtin_exec(source, globals, locals)

    return exec


def install(path: str | None = None) -> bool:
    """Give ``dataclasses`` the stored code objects, if a table for this interpreter exists."""
    try:
        with open(path or table_path(), "rb") as file:
            # One read, then loads: marshal.load(file) reads piecemeal, ~10x slower for this table.
            magic, table = marshal.loads(file.read())
    except (OSError, EOFError, ValueError, TypeError):
        return False  # no table (not built into this install), or unreadable: compile as usual
    if magic != _magic() or not isinstance(table, dict):
        return False
    import dataclasses

    dataclasses.exec = exec_with(dict(table))  # type: ignore[attr-defined]  # shadows the builtin there only
    return True


def record(package: str = "clipedit") -> tuple[dict[str, Any], list[str]]:
    """Import every module of ``package`` and return {module: {text: code}} of the methods
    ``dataclasses`` generated meanwhile (third-party classes those modules load included), and the
    modules that would not import here (their classes are then compiled at run time, as before)."""
    import dataclasses
    import importlib
    import pkgutil

    texts: dict[str, Any] = {}
    previous = dataclasses.__dict__.get("exec")
    dataclasses.exec = recording_exec(texts)  # type: ignore[attr-defined]
    failed = []
    try:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            try:
                importlib.import_module(info.name)
            except Exception as error:  # e.g. a module needing the media layer's PyAV
                failed.append(f"{info.name}: {type(error).__name__}: {error}")
    finally:
        if previous is None:
            del dataclasses.exec  # type: ignore[attr-defined]
        else:
            dataclasses.exec = previous  # type: ignore[attr-defined]
    return texts, failed


def write(path: str, modules: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    packed = {name: marshal.dumps(texts) for name, texts in modules.items() if name is not None}
    with open(path, "wb") as file:
        marshal.dump((_magic(), packed), file)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    package_dir = args[0] if args else _PACKAGE_DIR
    # A table loaded by ``clipedit/__init__`` already would hide texts: record from a clean start.
    import dataclasses

    if "exec" in dataclasses.__dict__:
        del dataclasses.exec  # type: ignore[attr-defined]
    table, failed = record()
    path = table_path(package_dir)
    write(path, table)
    print(f"{sum(map(len, table.values()))} dataclass methods of {len(table)} modules compiled into {path}")
    for line in failed:
        print(f"  not imported here (compiled at run time instead): {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

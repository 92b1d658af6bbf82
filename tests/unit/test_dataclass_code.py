"""Dataclass methods compiled at build time (clipedit/dataclass_code.py, cold start): a class built
from the stored code objects is the class ``dataclasses`` builds by compiling, and a table that
does not fit this interpreter is ignored."""

from __future__ import annotations

import dataclasses
import inspect
import marshal
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clipedit import dataclass_code
from clipedit.dataclass_code import compiled, exec_with, install, recording_exec, table_path, write

LAYER = Path(dataclass_code.__file__).resolve().parents[1]


def make_classes() -> tuple[type, type]:
    @dataclass(frozen=True)
    class Frozen:
        name: str
        size: int = 0
        tags: list[str] = field(default_factory=list, hash=False)
        extra: dict[str, Any] | None = None

    @dataclass
    class Plain:
        count: int = 0
        label: str = "x"

    return Frozen, Plain


class CountingTable(dict):
    hits = 0

    def get(self, key, default=None):  # type: ignore[override]
        if key in self:
            self.hits += 1
        return super().get(key, default)


def methods(cls: type) -> dict[str, Any]:
    return {name: getattr(cls, name) for name in ("__init__", "__repr__", "__eq__", "__setattr__", "__delattr__", "__hash__")
            if name in cls.__dict__ and callable(cls.__dict__[name])}


def test_a_class_built_from_the_stored_code_is_the_class_dataclasses_compiles(monkeypatch):
    modules: dict[str, Any] = {}
    monkeypatch.setattr(dataclasses, "exec", recording_exec(modules), raising=False)
    plain_frozen, plain_plain = make_classes()
    assert list(modules) == [__name__]  # by defining module
    texts = modules[__name__]
    assert len(texts) >= 8  # frozen: init, repr, eq, hash, setattr, delattr; plain: init, repr, eq

    table = CountingTable(texts)
    monkeypatch.setattr(dataclasses, "exec", exec_with({__name__: table}), raising=False)
    frozen, plain = make_classes()
    assert table.hits == len(texts)
    for before, after in ((plain_frozen, frozen), (plain_plain, plain)):
        old, new = methods(before), methods(after)
        assert old.keys() == new.keys()
        for name in old:
            assert new[name].__code__ == old[name].__code__, name
            assert new[name].__annotations__ == old[name].__annotations__  # real types, not strings
            assert new[name].__defaults__ == old[name].__defaults__
        assert inspect.signature(after) == inspect.signature(before)
    one = frozen("a", 2, ["t"])
    assert one == frozen("a", 2, ["t"]) and hash(one) == hash(frozen("a", 2, ["t"]))
    assert repr(one).endswith("Frozen(name='a', size=2, tags=['t'], extra=None)")
    assert one != frozen("a", 2, ["u"])
    assert frozen("b").tags == [] and frozen("b").tags is not frozen("c").tags
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.size = 3  # type: ignore[misc]
    assert plain(3) == plain(3, "x") and plain().label == "x"


def test_a_text_the_table_does_not_hold_is_compiled_as_before(monkeypatch):
    compiled_here, _ = make_classes()
    table = CountingTable()
    monkeypatch.setattr(dataclasses, "exec", exec_with({__name__: table, "elsewhere": {}}), raising=False)
    frozen, _ = make_classes()
    assert table.hits == 0
    assert frozen("a") == frozen("a", 0)
    # Compiled from our frame, which has no __future__ flags, exactly as from dataclasses' own.
    assert frozen.__init__.__annotations__ == compiled_here.__init__.__annotations__
    assert frozen.__init__.__code__ == compiled_here.__init__.__code__


def test_install_takes_only_a_table_for_this_interpreter(tmp_path, monkeypatch):
    monkeypatch.delattr(dataclasses, "exec", raising=False)
    assert install(str(tmp_path / "missing.marshal")) is False
    foreign = tmp_path / "foreign.marshal"
    foreign.write_bytes(marshal.dumps((b"\x00\x00\r\n", {})))
    assert install(str(foreign)) is False
    (tmp_path / "garbage.marshal").write_bytes(b"not marshal")
    assert install(str(tmp_path / "garbage.marshal")) is False
    assert "exec" not in dataclasses.__dict__

    ours = tmp_path / "ours.marshal"
    text = "def __create_fn__():\n def f(self):\n  return 1\n return f"
    write(str(ours), {"some.module": {text: compiled(text)}})
    monkeypatch.setattr(dataclasses, "exec", None, raising=False)  # undone after the test
    assert install(str(ours)) is True
    assert dataclasses.exec is not None and dataclasses.exec is not exec  # type: ignore[attr-defined]


def test_a_modules_block_is_unpacked_when_that_module_defines_a_class(tmp_path, monkeypatch):
    modules: dict[str, Any] = {}
    monkeypatch.setattr(dataclasses, "exec", recording_exec(modules), raising=False)
    make_classes()
    write(str(tmp_path / "table.marshal"), {**modules, "other.module": {"x = 1": compiled("x = 1")}})
    magic, packed = marshal.loads((tmp_path / "table.marshal").read_bytes())
    assert all(isinstance(block, bytes) for block in packed.values())
    monkeypatch.setattr(dataclasses, "exec", exec_with(packed), raising=False)
    frozen, _ = make_classes()
    assert isinstance(packed[__name__], dict) and isinstance(packed["other.module"], bytes)
    assert frozen("a") == frozen("a")


def test_the_table_sits_with_the_packages_bytecode(monkeypatch):
    monkeypatch.setattr(sys, "pycache_prefix", None)
    assert table_path("/opt/python/clipedit") == f"/opt/python/clipedit/__pycache__/{dataclass_code.TABLE_NAME}"
    monkeypatch.setattr(sys, "pycache_prefix", "/tmp/prefix")
    assert table_path("/opt/python/clipedit") == f"/tmp/prefix/opt/python/clipedit/{dataclass_code.TABLE_NAME}"


def test_the_build_step_imports_every_module_and_the_package_then_uses_the_table(tmp_path):
    # What the layer's Makefile runs, then a fresh interpreter loading the package with the table.
    env = dict(os.environ, PYTHONPATH=str(LAYER), PYTHONPYCACHEPREFIX=str(tmp_path))
    build = subprocess.run([sys.executable, "-c", "import sys; from clipedit.dataclass_code import main; sys.exit(main())"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert "not imported here" not in build.stdout, build.stdout  # every module imports with the layer's packages
    use = subprocess.run([sys.executable, "-c", "import dataclasses, clipedit.config, clipedit.ports; "
                          "print('exec' in dataclasses.__dict__)"], env=env, capture_output=True, text=True, timeout=120)
    assert use.stdout.strip() == "True", use.stderr

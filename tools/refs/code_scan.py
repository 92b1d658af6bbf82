"""Find the error codes the code can put on a job or an answer, by reading the source (AST).

A code counts as raised where it is a string literal passed as ``code=``/``error_code=``, the
``code = "..."`` attribute of an exception class, or the first item of a ``(code, message)`` pair
(the media checks collect problems that way). Each hit keeps the message next to it, so a code that
has no description in the domain's table yet is still listed with what its user is told.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (
    "layers/clipedit/python/clipedit",
    "layers/media/python/clipedit_media",
    "functions",
)
CODE_SHAPE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")


@dataclass(frozen=True)
class RaisedCode:
    code: str
    path: str  # relative to the repository root
    message: str  # the message raised with it, f-string fields shown as {…}; "" when none


def _text(node: ast.AST | None) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{…}" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def _is_code(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(CODE_SHAPE.match(node.value))


def _hits(tree: ast.AST) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in ("code", "error_code") and _is_code(keyword.value):
                    found.append((keyword.value.value, _text(node.args[0]) if node.args else ""))
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                        and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == "code"
                        and _is_code(statement.value)):
                    found.append((statement.value.value, (ast.get_docstring(node) or "").split("\n\n")[0]))
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and _is_code(node.elts[0]):
            message = _text(node.elts[1])
            if message:
                found.append((node.elts[0].value, message))
    return found


def source_files(root: Path = ROOT) -> list[Path]:
    return sorted(path for base in SCANNED for path in (root / base).rglob("*.py"))


def raised_codes(root: Path = ROOT) -> dict[str, list[RaisedCode]]:
    """Every code raised anywhere in the scanned source, with each place it is raised."""
    codes: dict[str, list[RaisedCode]] = {}
    for path in source_files(root):
        for code, message in _hits(ast.parse(path.read_text(), filename=str(path))):
            relative = str(path.relative_to(root))
            codes.setdefault(code, []).append(RaisedCode(code, relative, " ".join(message.split())))
    return codes


def mentioned(code: str, root: Path = ROOT, *, excluding: tuple[str, ...] = ()) -> bool:
    """Whether the literal ``"CODE"`` appears in the scanned source outside the excluded files."""
    needle = f'"{code}"'
    return any(needle in path.read_text() for path in source_files(root)
               if not str(path.relative_to(root)).endswith(excluding))

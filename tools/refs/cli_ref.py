"""docs/reference/cli.md from the typer app itself (``clipedit_cli.app.app``): every command, its
arguments and options with their types, defaults, environment variables and help."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import typer.main

from tools.refs.markdown import banner, code, table


# typer ships its own copy of click: commands and parameters are read by duck typing, not isinstance.
def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def _is_argument(param: Any) -> bool:
    return param.param_type_name == "argument"


def _commands(group: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path, command
        if _is_group(command):
            yield from _commands(command, path)


def _names(param: Any) -> str:
    if _is_argument(param):
        return code(param.name.upper())
    return " / ".join(code(name) for name in [*param.opts, *param.secondary_opts])


def _type(param: Any) -> str:
    if not _is_argument(param) and param.is_flag:
        return "flag"
    kind = param.bare_type()
    if kind.startswith("list[") and kind.endswith("]"):
        return f"{kind[5:-1]}, repeatable"
    return kind


def _default(param: Any) -> str:
    default = param.default
    if _is_argument(param) or default is None or default == () or callable(default):
        return "(required)" if param.required else ""
    if param.is_flag and param.secondary_opts:
        return code(param.opts[0] if default else param.secondary_opts[0])
    return code(default)


def _help(param: Any) -> str:
    return getattr(param, "help", None) or ""


def _params_table(command: Any) -> str:
    params = [p for p in command.params if p.name != "help" and not getattr(p, "hidden", False)]
    if not params:
        return "No arguments or options.\n"
    return table(("argument / option", "type", "default", "environment", "help"),
                 ((_names(p), _type(p), _default(p), code(p.envvar) if getattr(p, "envvar", None) else "", _help(p))
                  for p in params))


def _text(command: Any) -> str:
    return inspect.cleandoc(command.help or "")


def _usage(path: str, command: Any) -> str:
    pieces = [param.name.upper() + ("..." if param.nargs == -1 else "") for param in command.params if _is_argument(param)]
    options = any(not _is_argument(param) for param in command.params)
    return f"clipedit [GLOBAL OPTIONS]{path}{' [OPTIONS]' if options else ''}{''.join(' ' + p for p in pieces)}"


def render() -> str:
    from clipedit_cli.app import app

    root = typer.main.get_command(app)
    out = [banner("the typer app in cli/clipedit_cli/app.py"), "# `clipedit` command reference\n\n",
           "Every command with its arguments and options, read from the command's own definition "
           "(the same text as `clipedit COMMAND --help`).\n\n", "```text\n", _text(root), "\n```\n",
           "\n## Global options\n\nGiven before the command: `clipedit --stack my-clipedit list`.\n\n",
           _params_table(root)]
    for path, command in _commands(root, ""):
        out.append(f"\n## `clipedit{path}`\n\n")
        if _is_group(command):
            out.append(f"{_text(command)}\n\nSubcommands: "
                       + ", ".join(code(f"clipedit{path} {name}") for name in command.commands) + ".\n")
            continue
        out.append(f"```text\n{_usage(path, command)}\n```\n\n{_text(command)}\n\n{_params_table(command)}")
    return "".join(out)

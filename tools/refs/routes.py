"""The status API's routes as each place declares them: the handler's resolver decorators, the
template's HttpApi events on the status API, the local stand-in gateway, and docs/openapi.yaml.
``tests/docs`` checks they are one set, so the OpenAPI document cannot drift from what is served."""

from __future__ import annotations

import ast
import re

import yaml

from local.template import TEMPLATE_PATH, load_template
from tools.refs.code_scan import ROOT

HANDLER = ROOT / "functions" / "status_api" / "app.py"
OPENAPI = ROOT / "docs" / "openapi.yaml"
HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

Route = tuple[str, str]  # ("GET", "/jobs/{job_id}")


def handler_routes() -> set[Route]:
    """``@app.get("/jobs/<job_id>")`` and the like in the handler module, read without importing it."""
    routes: set[Route] = set()
    for node in ast.walk(ast.parse(HANDLER.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and isinstance(decorator.func.value, ast.Name) and decorator.func.value.id == "app"
                        and decorator.func.attr in HTTP_METHODS and decorator.args
                        and isinstance(decorator.args[0], ast.Constant)):
                    path = re.sub(r"<(\w+)>", r"{\1}", decorator.args[0].value)
                    routes.add((decorator.func.attr.upper(), path))
    return routes


def template_routes(api: str = "StatusApi") -> set[Route]:
    routes: set[Route] = set()
    for resource in load_template(TEMPLATE_PATH)["Resources"].values():
        for event in (resource.get("Properties") or {}).get("Events", {}).values():
            properties = event.get("Properties") or {}
            if event.get("Type") == "HttpApi" and properties.get("ApiId") == {"Ref": api}:
                routes.add((properties["Method"].upper(), properties["Path"]))
    return routes


def local_gateway_routes() -> set[Route]:
    from local.status_gateway import ROUTES

    return {(route_key.split(" ", 1)[0], route_key.split(" ", 1)[1]) for _, _, route_key in ROUTES}


def openapi_routes() -> set[Route]:
    document = yaml.safe_load(OPENAPI.read_text())
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}

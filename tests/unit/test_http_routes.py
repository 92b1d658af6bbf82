"""The status API's router (clipedit.adapters.http_routes) answers as Powertools' APIGatewayHttpResolver
did for what the status API uses: routes and parameters, stage prefix, exception handlers, JSON."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from clipedit.adapters.http_routes import HttpRoutes, Response


def event(method: str, path: str, *, stage: str = "$default", body: str | None = None, b64: bool = False) -> dict:
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    e = {"rawPath": raw_path, "requestContext": {"http": {"method": method}, "stage": stage, "requestId": "req-1"}}
    if body is not None:
        e["body"] = base64.b64encode(body.encode()).decode() if b64 else body
        e["isBase64Encoded"] = b64
    return e


class Missing(Exception):
    pass


class VeryMissing(Missing):
    pass


@pytest.fixture
def routes() -> HttpRoutes:
    app = HttpRoutes()

    @app.get("/jobs/<job_id>")
    def job(job_id: str) -> dict:
        if job_id == "gone":
            raise VeryMissing(job_id)
        if job_id == "boom":
            raise RuntimeError("boom")
        return {"job_id": job_id, "cost": Decimal("0.10")}

    @app.get("/jobs/latest")
    def latest() -> dict:
        return {"latest": True}

    @app.post("/jobs")
    def post() -> Response:
        return Response(202, "application/json", json.dumps({"body": app.current_event.decoded_body,
                                                              "request": app.current_event.request_id}))

    @app.exception_handler(Missing)
    def missing(error: Missing) -> Response:
        return Response(404, "application/json", {"missing": str(error)})

    @app.not_found
    def no_route(error: Exception) -> Response:
        return Response(404, "application/json", {"code": "NO_SUCH_ROUTE"})

    return app


def test_a_dict_is_compact_json_with_decimals_as_strings(routes):
    assert routes.resolve(event("GET", "/jobs/j1")) == {
        "statusCode": 200, "body": '{"job_id":"j1","cost":"0.10"}', "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"}, "cookies": []}


def test_a_literal_route_wins_over_a_parameter_and_the_stage_prefix_is_dropped(routes):
    assert json.loads(routes.resolve(event("GET", "/jobs/latest"))["body"]) == {"latest": True}
    assert json.loads(routes.resolve(event("get", "/jobs/j2", stage="prod"))["body"])["job_id"] == "j2"


def test_parameters_are_not_decoded_and_never_span_a_slash(routes):
    assert json.loads(routes.resolve(event("GET", "/jobs/a%20b:c@d"))["body"])["job_id"] == "a%20b:c@d"
    for path in ("/jobs/a/b", "/jobs/j1/", "/"):
        assert json.loads(routes.resolve(event("GET", path))["body"]) == {"code": "NO_SUCH_ROUTE"}


def test_an_unknown_method_is_not_found(routes):
    assert routes.resolve(event("DELETE", "/jobs/j1"))["statusCode"] == 404


def test_a_response_string_body_is_sent_as_is_and_base64_bodies_are_decoded(routes):
    answer = routes.resolve(event("POST", "/jobs", body='{"a": 1}', b64=True))
    assert answer["statusCode"] == 202
    assert json.loads(answer["body"]) == {"body": '{"a": 1}', "request": "req-1"}


def test_exception_handlers_match_subclasses_and_anything_else_is_raised(routes):
    answer = routes.resolve(event("GET", "/jobs/gone"))
    assert (answer["statusCode"], json.loads(answer["body"])) == (404, {"missing": "gone"})
    with pytest.raises(RuntimeError, match="boom"):
        routes.resolve(event("GET", "/jobs/boom"))

"""The API's descriptions are true: docs/openapi.json (OpenAPI 3.1) and docs/asyncapi.json
(AsyncAPI 3.0) validate with their standard validators, name every route the gateway serves,
are what the gateway serves, and describe what the stack really sends: the frames of a send,
an edit and a deletion validate against the AsyncAPI payload schemas. (The HTTP replies are
checked against the OpenAPI document by the fuzzer, Schemathesis, which make test runs after
these tests.)"""

import json
import os
import subprocess
import time
import uuid

import jsonschema
import pytest
from websockets.sync.client import connect
from conftest import ROOT, csp_violations, request, send
from openapi_spec_validator import validate as validate_openapi

OPENAPI = json.loads((ROOT / "docs/openapi.json").read_text())
ASYNCAPI = json.loads((ROOT / "docs/asyncapi.json").read_text())
ROUTES = json.loads((ROOT / "infra/routes.json").read_text())


def test_openapi_is_valid_3_1():
    assert OPENAPI["openapi"].startswith("3.1.")
    validate_openapi(OPENAPI)


def test_every_route_of_the_gateway_is_in_the_openapi_document_and_nothing_else():
    served = {(r["method"].lower(), r["path"]) for r in ROUTES["routes"]}
    described = {(method, path) for path, item in OPENAPI["paths"].items() for method in item}
    # The original app's clients spell two paths with a trailing slash: documented as such,
    # served by the route without it (API Gateway routes /users/ to GET /users).
    routed = {(method, path[:-1] if len(path) > 1 and path.endswith("/") else path)
              for method, path in described}
    assert served == routed
    assert all(not path.endswith("/") or path == "/" for _, path in served)


def test_asyncapi_is_valid_3_0_by_asyncapis_own_parser():
    assert ASYNCAPI["asyncapi"].startswith("3.0.")
    node_modules = os.environ.get("CHAT_WEB_NODE_MODULES")
    if not node_modules:
        pytest.fail("CHAT_WEB_NODE_MODULES is not set: run these tests with `make test`")
    result = subprocess.run(
        ["node", str(ROOT / "tests/web/validate_asyncapi.mjs"), node_modules, str(ROOT / "docs/asyncapi.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gateway_serves_the_checked_in_documents(api_url):
    for name, document in (("openapi.json", OPENAPI), ("asyncapi.json", ASYNCAPI)):
        status, served, headers = request("GET", f"{api_url}/{name}")
        assert status == 200 and served == document, name
        assert headers["Content-Type"].startswith("application/json")


def frame_schema(name):
    """The payload schema of an AsyncAPI message, with the document's components beside it so
    that its $refs resolve."""
    message = ASYNCAPI["components"]["messages"][name]
    return {**message["payload"], "components": ASYNCAPI["components"]}


def frames_of(ws_url, message_id, wanted, act):
    """Subscribes to group 1, runs `act`, and returns the frames of `message_id` by event until
    `wanted` have come. Synchronous: the browser tests' Playwright owns this thread's loop."""
    with connect(f"{ws_url}/?group_id=1", open_timeout=15) as socket:
        time.sleep(0.2)
        act()
        seen = {}
        deadline = time.monotonic() + 15
        while len(seen) < wanted:
            frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if frame.get("id") == message_id():
                seen[frame["event"]] = frame
        return seen


def test_real_frames_match_the_asyncapi_payloads(api_url):
    ws_url = api_url.replace("http://", "ws://", 1)
    sent = {}

    def act():
        text = f"contract {uuid.uuid4().hex[:6]}"
        sent["id"] = send(api_url, 2, text)
        status, body, _ = request("PUT", f"{api_url}/edit-message/{sent['id']}", {"user_id": 2, "new_text": text + "!"})
        assert status == 202, body
        status, body, _ = request("DELETE", f"{api_url}/delete-message/{sent['id']}?user_id=2")
        assert status == 202, body

    frames = frames_of(ws_url, lambda: sent.get("id"), 3, act)
    for event, frame in frames.items():
        jsonschema.validate(frame, frame_schema(event))
    # And the schemas are not vacuous: a frame missing its id, or with a wrong event, fails.
    broken = {k: v for k, v in frames["created"].items() if k != "id"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, frame_schema("created"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**frames["deleted"], "event": "created"}, frame_schema("deleted"))


def test_a_traced_frame_matches_too(api_url):
    ws_url = api_url.replace("http://", "ws://", 1)
    sent = {}

    def act():
        status, body, _ = request("POST", f"{api_url}/send-message/",
                                  {"user_id": 1, "message": "traced"}, headers={"X-Chat-Trace": "1"})
        assert status == 202, body
        sent["id"] = body["message_id"]

    frame = frames_of(ws_url, lambda: sent.get("id"), 1, act)["created"]
    assert set(frame["trace"]) >= {"received", "checked", "started", "stored", "pushing"}
    jsonschema.validate(frame, frame_schema("created"))


def test_the_docs_page_lists_every_operation(browser, api_url):
    page = browser.new_page()
    blocked = csp_violations(page)
    page.goto(f"{api_url}/docs.html")
    operations = {op["operationId"] for item in OPENAPI["paths"].values() for op in item.values()}
    page.locator("section.op").nth(len(operations) - 1).wait_for(timeout=15_000)
    shown = set(page.locator("section.op").evaluate_all("els => els.map(e => e.dataset.operation)"))
    assert shown == operations
    # Each shows its replies, errors included.
    assert page.locator('section.op[data-operation="sendMessage"] td', has_text="422").count() == 1
    assert blocked == [], blocked
    page.close()

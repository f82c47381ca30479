"""Logs and metrics as an operator on AWS gets them, read from the functions' own output in
make test's stack (its functions run with AWS_LAMBDA_LOG_FORMAT=JSON, as the template sets):
one structured JSON line per request, and CloudWatch EMF metric lines that `chatctl stats`
sums up."""

import json
import time
import uuid
from pathlib import Path

import pytest
from conftest import chatctl, env, request, send


def logs_dir() -> Path:
    path = Path(env("CHAT_TEST_DATA")) / "api"
    if not path.is_dir():
        pytest.fail(f"no function logs in {path}: run these tests with `make test`")
    return path


def json_lines(path: Path):
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                pass


def wait_for(find, what, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} did not show up within {seconds} s")


def test_every_request_logs_one_json_line_with_route_status_and_duration(api_url):
    status, body, _ = request("GET", f"{api_url}/messages/1?limit=1&before=x")
    assert status == 400, body
    log = logs_dir() / "get-messages.log"

    def refused_line():
        return [
            line for line in json_lines(log)
            if line.get("fields", {}).get("message") == "request"
            and line["fields"].get("status") == 400
        ]

    lines = wait_for(refused_line, "a JSON request line for GET /messages/1 (400)")
    fields = lines[-1]["fields"]
    assert fields["route"] == "GET /messages/{group_id}"
    assert isinstance(fields["duration_ms"], float) and fields["duration_ms"] >= 0
    assert lines[-1]["level"] == "INFO"
    # The invocation's request id rides along, as CloudWatch Logs Insights queries expect.
    assert lines[-1]["span"]["requestId"]


def test_chatctl_stats_reads_the_functions_emf_metrics(api_url):
    send(api_url, 2, f"metrics {uuid.uuid4().hex[:6]}")

    def stats():
        table = chatctl("stats", "--logs", str(logs_dir()), "--seconds", "600")
        wanted = ["route=POST /send-message status=202", "records_applied", "pushes_sent", "lag (ms)",
                  "batch_duration (ms)", "request_duration (ms)"]
        return table if all(w in table for w in wanted) else None

    table = wait_for(stats, "the send's metrics in `chatctl stats`")
    print(table)
    rows = [line.split() for line in table.splitlines()]
    applied = [row for row in rows if row[:2] == ["kafka-consumer", "records_applied"]]
    assert applied and float(applied[0][-1]) >= 1, table
    # Every EMF line is a valid CloudWatch document: the dimensions it names are its members.
    for log in logs_dir().glob("*.log"):
        for line in json_lines(log):
            if "_aws" not in line:
                continue
            directive = line["_aws"]["CloudWatchMetrics"][0]
            assert directive["Namespace"]
            for dimension in directive["Dimensions"][0]:
                assert isinstance(line[dimension], str), (log, line)
            for metric in directive["Metrics"]:
                assert metric["Name"] in line, (log, line)

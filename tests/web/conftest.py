"""What the web tests share: the stack under test (make test's, or any given by the
environment), Chromium, and where screenshots go. A service that does not answer fails the
test with what to start; nothing is skipped."""

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("CHAT_TEST_OUTPUT", ROOT / "test-output"))
START = "run these tests with `make test`, or start `make dev` and set CHAT_API_URL (and DYNAMODB_ENDPOINT)"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: {START}")
    return value


@pytest.fixture(scope="session")
def api_url() -> str:
    url = env("CHAT_API_URL").rstrip("/")
    try:
        urllib.request.urlopen(f"{url}/users/", timeout=30).read()
    except (urllib.error.URLError, OSError) as e:
        pytest.fail(f"no chat API answers at {url} ({e}): {START}")
    return url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    path = OUTPUT / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def request(method: str, url: str, body=None, headers=None):
    """One HTTP call: (status, parsed JSON or None, headers)."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"} if body is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None), response.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, parsed, e.headers


def send(api_url: str, user_id: int, text: str) -> int:
    """Sends as `user_id` and waits until the message is stored; its id."""
    status, body, _ = request("POST", f"{api_url}/send-message/", {"user_id": user_id, "message": text})
    assert status == 202, (status, body)
    message_id = body["message_id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, page, _ = request("GET", f"{api_url}/messages/{body['group_id']}?after={message_id - 1}&limit=1")
        if page and page[0]["id"] == message_id:
            return message_id
        time.sleep(0.1)
    pytest.fail(f"message {message_id} was not stored within 15 s")


def chatctl(*args: str) -> str:
    """Runs the stack's chatctl (built by make test) and returns what it printed."""
    import subprocess

    binary = Path(env("CARGO_TARGET_DIR")) / "debug" / "chatctl"
    out = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def csp_violations(page) -> list:
    """Collects what the page's Content-Security-Policy blocks (Chromium reports each on the
    console): the gateway serves the policy CloudFront adds on AWS."""
    blocked = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    return blocked

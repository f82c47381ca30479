"""What `make deploy-web` uploads to the bucket behind CloudFront is what the local gateway
serves, plus the config.json that points the page at the deployed WebSocket API."""

import json
import subprocess
import urllib.request

from conftest import ROOT

STACK = ROOT / "infra/local/stack.sh"
WS = "wss://abc123.execute-api.eu-west-1.amazonaws.com/live"


def stage(tmp_path, url):
    return subprocess.run([str(STACK), "stage-web", str(tmp_path / "site"), url],
                          capture_output=True, text=True, timeout=60)


def test_the_uploaded_files_are_those_the_gateway_serves(tmp_path, api_url):
    out = stage(tmp_path, WS)
    assert out.returncode == 0, out.stderr
    site = tmp_path / "site"
    assert {p.name for p in site.iterdir()} == {
        "index.html", "app.js", "app.css", "docs.html", "docs.js", "docs.css", "openapi.json",
        "asyncapi.json", "config.json"}
    assert json.loads((site / "config.json").read_text()) == {"websocket": WS}
    for path, name in (("/", "index.html"), ("/app.js", "app.js"), ("/app.css", "app.css"),
                       ("/docs.html", "docs.html"), ("/docs.js", "docs.js"), ("/docs.css", "docs.css"),
                       ("/openapi.json", "openapi.json"), ("/asyncapi.json", "asyncapi.json")):
        with urllib.request.urlopen(f"{api_url}{path}", timeout=30) as served:
            assert served.read() == (site / name).read_bytes(), path


def test_a_url_that_is_not_a_websocket_url_is_refused(tmp_path):
    for bad in ("https://example.com/live", 'wss://x"}, "api": "https://evil', ""):
        out = stage(tmp_path, bad)
        assert out.returncode != 0, bad
    assert not (tmp_path / "site" / "config.json").exists()

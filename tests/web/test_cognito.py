"""Signing in as docs/deploy.md tells a deployer, against an emulated Cognito (moto): the user
pool and app client as infra/template.yaml makes them, the documented commands run as written,
and the ID token they yield trusted by the stack in jwt mode as the pool's issuer, sending a
message.

moto does not enforce an app client's ExplicitAuthFlows, which Cognito does: the test checks
the template for the flow the documented commands use."""

import base64
import json
import os
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, env, request

REGION = "us-east-1"
SIGN_IN_MARKER = "<!-- sign-in: tests/web/test_cognito.py runs these commands -->"


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, each kept as {"Tag": value}."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


CloudFormationLoader.add_multi_constructor("!", _tagged)
TEMPLATE = yaml.load((ROOT / "infra/template.yaml").read_text(), Loader=CloudFormationLoader)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, process, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"{what} did not open port {port}")


@pytest.fixture(scope="module")
def cognito(tmp_path_factory):
    """moto's Cognito on a free port; its endpoint and the environment of the AWS CLI."""
    venv = Path(env("CHAT_MOTO_VENV"))
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([str(venv / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    wait_for(port, server, "moto_server")
    endpoint = f"http://127.0.0.1:{port}"
    cli_env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION,
               "AWS_ACCESS_KEY_ID": "deployer", "AWS_SECRET_ACCESS_KEY": "deployer",
               "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    cli_env.pop("AWS_PROFILE", None)
    yield endpoint, cli_env
    server.terminate()
    server.wait(timeout=10)
    log.close()


def aws(cli_env, *args):
    out = subprocess.run(["aws", "cognito-idp", *args, "--output", "json"], env=cli_env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def template_pool_and_client(cli_env):
    """The pool and app client as the template declares them."""
    pool = TEMPLATE["Resources"]["UserPool"]["Properties"]
    schema = [{"Name": a["Name"], "AttributeDataType": a["AttributeDataType"], "Mutable": a["Mutable"],
               "StringAttributeConstraints": a.get("StringAttributeConstraints", {})}
              for a in pool["Schema"]]
    pool_id = aws(cli_env, "create-user-pool", "--pool-name", "chat-users",
                  "--schema", json.dumps(schema),
                  "--admin-create-user-config", json.dumps(pool["AdminCreateUserConfig"]))["UserPool"]["Id"]
    client = TEMPLATE["Resources"]["UserPoolClient"]["Properties"]
    created = aws(cli_env, "create-user-pool-client", "--user-pool-id", pool_id, "--client-name", "chat",
                  "--explicit-auth-flows", *client["ExplicitAuthFlows"],
                  "--read-attributes", *client["ReadAttributes"],
                  "--write-attributes", *client["WriteAttributes"],
                  "--prevent-user-existence-errors", client["PreventUserExistenceErrors"],
                  *(["--generate-secret"] if client["GenerateSecret"] else ["--no-generate-secret"]))
    return pool_id, created["UserPoolClient"]["ClientId"]


def documented_commands():
    """The sign-in commands of docs/deploy.md, as written there."""
    text = (ROOT / "docs/deploy.md").read_text()
    assert SIGN_IN_MARKER in text, "docs/deploy.md lost its sign-in commands"
    block = re.search(r"```sh\n(.*?)```", text[text.index(SIGN_IN_MARKER):], re.S)
    assert block, "no ```sh block after the sign-in marker"
    return block.group(1)


def test_the_app_client_allows_the_auth_flow_the_documented_commands_use():
    flows = set(re.findall(r"--auth-flow\s+(\w+)", documented_commands()))
    assert flows, "the documented commands sign in with no --auth-flow"
    allowed = set(TEMPLATE["Resources"]["UserPoolClient"]["Properties"]["ExplicitAuthFlows"])
    for flow in flows:
        assert f"ALLOW_{flow}" in allowed, f"Cognito refuses {flow}: the app client allows {allowed}"


def start_gateway(issuer, audience, jwks_url):
    """A local API Gateway in jwt mode whose issuer is the pool, in front of the stack's
    functions."""
    port = free_port()
    binary = Path(env("CARGO_TARGET_DIR")) / "debug/local-apigw"
    gateway_env = {**os.environ, "APIGW_LISTEN": f"127.0.0.1:{port}", "APIGW_JWT_LISTEN": "",
                   "AUTH_MODE": "jwt", "AUTH_ISSUER": issuer, "AUTH_AUDIENCE": audience,
                   "AUTH_JWKS_URL": jwks_url, "LAMBDA_INVOKE_URL": env("LAMBDA_INVOKE_URL")}
    process = subprocess.Popen([str(binary)], env=gateway_env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for(port, process, "local-apigw")
    return process, f"http://127.0.0.1:{port}"


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_documented_sign_in_yields_a_token_the_stack_trusts_as_the_pools_issuer(cognito):
    endpoint, cli_env = cognito
    pool_id, client_id = template_pool_and_client(cli_env)
    # David (user 4, group 2, may delete his messages): the browser tests use group 1.
    password = f"Chat-{uuid.uuid4().hex[:12]}-9"
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", documented_commands()],
                         env={**cli_env, "POOL_ID": pool_id, "CLIENT_ID": client_id,
                              "USERNAME": "david", "CHAT_USER_ID": "4", "NAME": "David",
                              "PASSWORD": password},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    token = run.stdout.strip().splitlines()[-1]
    claims = claims_of(token)
    assert claims["custom:user_id"] == "4" and claims["token_use"] == "id", claims
    # chatctl login, the same sign-in (make smoke signs in with it).
    login = subprocess.run([str(Path(env("CARGO_TARGET_DIR")) / "debug/chatctl"), "login",
                            "--client-id", client_id, "--username", "david"],
                           env={**cli_env, "CHAT_PASSWORD": password}, capture_output=True, text=True,
                           timeout=60)
    assert login.returncode == 0, login.stderr
    assert claims_of(login.stdout.strip())["custom:user_id"] == "4"
    wrong = subprocess.run([str(Path(env("CARGO_TARGET_DIR")) / "debug/chatctl"), "login",
                            "--client-id", client_id, "--username", "david"],
                           env={**cli_env, "CHAT_PASSWORD": "not-the-password"}, capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode != 0 and "refused" in wrong.stderr, wrong.stderr
    # The issuer the template gives the JWT authorizer and ws-authorize for its own pool.
    issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{pool_id}"
    assert claims["iss"] == issuer and claims["aud"] == client_id
    gateway, api = start_gateway(issuer, client_id, f"{endpoint}/{pool_id}/.well-known/jwks.json")
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        text = f"signed in with Cognito {uuid.uuid4().hex[:8]}"
        status, reply, _ = request("POST", f"{api}/send-message", {"message": text}, headers=bearer)
        assert status == 202, reply
        assert reply["group_id"] == 2
        message_id = reply["message_id"]
        deadline = time.time() + 20
        while True:
            status, page, _ = request("GET", f"{api}/messages/2?after={message_id - 1}", headers=bearer)
            assert status == 200, page
            if any(m["id"] == message_id and m["message"] == text for m in page):
                break
            assert time.time() < deadline, "the message never reached the history"
            time.sleep(0.2)
        # The token's user, not the body's, sends; and nobody without a token.
        status, _, _ = request("POST", f"{api}/send-message", {"user_id": 3, "message": "x"}, headers=bearer)
        assert status == 403
        status, _, _ = request("POST", f"{api}/send-message", {"message": "x"})
        assert status == 401
        status, reply, _ = request("DELETE", f"{api}/delete-message/{message_id}", headers=bearer)
        assert status == 202, reply
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)

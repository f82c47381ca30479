"""The chat page (web/) in a real Chromium, against a real stack: two windows as two users of
one group, edits and deletions from one seen in the other, buttons only where the user's
flags allow, and recovery after the server closes the socket."""

import json
import os
import re
import time
import urllib.parse
import urllib.request
import uuid

import pytest
import sigv4
from conftest import chatctl, csp_violations, env, request, send
from playwright.sync_api import expect

ALICE, BOB = 1, 2  # group 1; Alice may edit but not delete, Bob may do both
TIMEOUT = 15_000  # ms for anything to show up on screen


def open_as(browser, api_url, user_id, setup=None):
    """A window of its own (its own session storage) signed in as `user_id`, live."""
    context = browser.new_context(viewport={"width": 640, "height": 720})
    page = context.new_page()
    if setup:
        setup(page)
    page.goto(f"{api_url}/")
    page.locator(f'#users button[data-user-id="{user_id}"]').click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    return page


def item(page, text):
    return page.locator("#messages li", has=page.locator(".text", has_text=re.compile(f"^{re.escape(text)}$")))


def type_and_send(page, text):
    page.locator("#text").fill(text)
    page.locator("#text").press("Enter")


def test_the_page_loads_fast_and_lists_the_users(browser, api_url):
    context = browser.new_context()
    page = context.new_page()
    blocked = csp_violations(page)
    page.goto(f"{api_url}/")
    expect(page.locator("#users button[data-user-id=\"2\"]")).to_be_visible(timeout=TIMEOUT)
    timing = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
    load = json.loads(timing)
    print(f"page load: DOMContentLoaded {load['domContentLoadedEventEnd']:.0f} ms, load {load['loadEventEnd']:.0f} ms")
    assert load["loadEventEnd"] < 3000
    expect(page.locator("#connection")).to_have_text("offline")
    assert blocked == [], blocked
    context.close()


def test_two_windows_chat_live(browser, api_url, output_dir):
    alice = open_as(browser, api_url, ALICE)
    bob = open_as(browser, api_url, BOB)
    hello = f"Hello Bob, {uuid.uuid4().hex[:6]}"
    type_and_send(alice, hello)
    expect(item(bob, hello)).to_have_count(1, timeout=TIMEOUT)
    expect(item(alice, hello)).to_have_count(1)
    reply = f"Hi Alice! {uuid.uuid4().hex[:6]}"
    type_and_send(bob, reply)
    expect(item(alice, reply)).to_have_count(1, timeout=TIMEOUT)
    expect(item(alice, reply).locator(".author")).to_have_text("Bob")
    # Sent in order, shown in order, once.
    for page in (alice, bob):
        texts = page.locator("#messages .text").all_text_contents()
        assert texts.index(hello) < texts.index(reply)
        assert texts.count(hello) == 1 and texts.count(reply) == 1
        expect(item(page, reply)).not_to_have_class(re.compile("pending"), timeout=TIMEOUT)
    both_windows(alice, bob, output_dir / "two-windows.png")
    alice.context.close()
    bob.context.close()


def both_windows(left, right, path):
    """One picture of two windows side by side."""
    from PIL import Image

    shots = [screenshot(page, path.with_name(f"{path.stem}-{i}.png")) for i, page in enumerate((left, right))]
    images = [Image.open(shot) for shot in shots]
    canvas = Image.new("RGB", (sum(i.width for i in images) + 16, max(i.height for i in images)), "#9ca3af")
    canvas.paste(images[0], (0, 0))
    canvas.paste(images[1], (images[0].width + 16, 0))
    canvas.save(path)
    for shot in shots:
        shot.unlink()
    print(f"screenshot: {path}")


def screenshot(page, path):
    page.screenshot(path=str(path))
    return path


def test_edits_and_deletions_show_in_the_other_window(browser, api_url):
    alice = open_as(browser, api_url, ALICE)
    bob = open_as(browser, api_url, BOB)
    text = f"typo heer {uuid.uuid4().hex[:6]}"
    type_and_send(bob, text)
    mine = item(bob, text)
    expect(mine).not_to_have_class(re.compile("pending"), timeout=TIMEOUT)
    expect(item(alice, text)).to_have_count(1, timeout=TIMEOUT)

    fixed = text.replace("heer", "here")
    mine.locator("button.edit").click()
    bob.locator(".edit-box").fill(fixed)
    bob.locator("button.save").click()
    expect(item(alice, fixed)).to_have_count(1, timeout=TIMEOUT)
    expect(item(alice, fixed).locator(".edited")).to_have_text("edited")
    expect(item(alice, text)).to_have_count(0)

    edited = item(bob, fixed)
    expect(edited).not_to_have_class(re.compile("pending"), timeout=TIMEOUT)
    edited.locator("button.delete").click()
    expect(item(alice, fixed)).to_have_count(0, timeout=TIMEOUT)
    expect(item(bob, fixed)).to_have_count(0)
    # Stays gone on a fresh load: the deletion was stored, not just hidden.
    alice.reload()
    expect(alice.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(alice.locator("#messages li").first).to_be_visible(timeout=TIMEOUT)
    expect(item(alice, fixed)).to_have_count(0)
    alice.context.close()
    bob.context.close()


def test_buttons_follow_the_users_flags(browser, api_url):
    alice = open_as(browser, api_url, ALICE)
    own = f"Alice cannot delete this {uuid.uuid4().hex[:6]}"
    type_and_send(alice, own)
    message = item(alice, own)
    expect(message).not_to_have_class(re.compile("pending"), timeout=TIMEOUT)
    expect(message.locator("button.edit")).to_have_count(1)
    expect(message.locator("button.delete")).to_have_count(0)
    # Nobody gets buttons on someone else's message.
    others = f"Bob's own {uuid.uuid4().hex[:6]}"
    send(api_url, BOB, others)
    expect(item(alice, others)).to_have_count(1, timeout=TIMEOUT)
    expect(item(alice, others).locator("button")).to_have_count(0)
    alice.context.close()


def test_an_error_from_the_api_is_shown(browser, api_url):
    alice = open_as(browser, api_url, ALICE)
    alice.locator("#text").fill("x" * 4096 + "y")  # the text box stops at 4096 characters
    assert len(alice.locator("#text").input_value()) == 4096
    # A message the API refuses: control characters other than tab and line breaks.
    alice.locator("#text").fill("bell \u0007")
    alice.locator("#text").press("Enter")
    expect(alice.locator("#error")).to_contain_text("control character", timeout=TIMEOUT)
    expect(alice.locator("#error")).to_be_visible()
    alice.context.close()


def test_older_messages_load_on_scrolling_up(browser, api_url):
    # More than a page (50) of messages, so that the first view cannot hold them all.
    marker = uuid.uuid4().hex[:6]
    first = f"oldest of {marker}"
    send(api_url, BOB, first)
    # Both people of the group send them, and wait out a 429 as its Retry-After says: 55
    # sends at once are past one person's send limit (20, then 2 a second, by default).
    for i in range(55):
        sender = (ALICE, BOB)[i % 2]
        for _ in range(30):
            status, body, headers = request("POST", f"{api_url}/send-message/", {"user_id": sender, "message": f"filler {i} of {marker}"})
            if status != 429:
                break
            time.sleep(float(headers.get("Retry-After", "1")))
        assert status == 202, body
    send(api_url, BOB, f"newest of {marker}")
    alice = open_as(browser, api_url, ALICE)
    expect(item(alice, f"newest of {marker}")).to_have_count(1, timeout=TIMEOUT)
    expect(item(alice, first)).to_have_count(0)
    for _ in range(10):
        alice.locator("#scroller").evaluate("el => el.scrollTop = 0")
        if item(alice, first).count():
            break
        alice.wait_for_timeout(500)
    expect(item(alice, first)).to_have_count(1, timeout=TIMEOUT)
    ids = [int(i) for i in alice.locator("#messages li").evaluate_all("els => els.map(e => e.dataset.id)")]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    alice.context.close()


def test_the_page_recovers_when_the_server_closes_its_socket(browser, api_url):
    # While `refuse` is set the browser's new sockets fail, as they would with the network down;
    # otherwise they pass through to the gateway untouched.
    refuse = {"on": False}

    def route(ws):
        if refuse["on"]:
            ws.close(code=1011, reason="refused by the test")
        else:
            ws.connect_to_server()

    alice = open_as(browser, api_url, ALICE, setup=lambda page: page.route_web_socket(re.compile(".*"), route))
    before = f"before the drop {uuid.uuid4().hex[:6]}"
    send(api_url, BOB, before)
    expect(item(alice, before)).to_have_count(1, timeout=TIMEOUT)

    refuse["on"] = True
    closed = close_sockets_of_group(api_url, 1)
    assert closed, "no socket of group 1 to close"
    expect(alice.locator("#connection")).to_have_attribute("data-state", "reconnecting", timeout=TIMEOUT)
    # Sent, edited and deleted while the page cannot hear about it.
    meanwhile = f"sent meanwhile {uuid.uuid4().hex[:6]}"
    send(api_url, BOB, meanwhile)
    status, body, _ = request("DELETE", f"{api_url}/delete-message/{find_id(api_url, before)}?user_id={BOB}")
    assert status == 202, body
    time.sleep(1)
    expect(item(alice, meanwhile)).to_have_count(0)

    refuse["on"] = False
    expect(alice.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(item(alice, meanwhile)).to_have_count(1, timeout=TIMEOUT)
    expect(item(alice, before)).to_have_count(0, timeout=TIMEOUT)
    # And live again afterwards.
    after = f"after the drop {uuid.uuid4().hex[:6]}"
    send(api_url, BOB, after)
    expect(item(alice, after)).to_have_count(1, timeout=TIMEOUT)
    alice.context.close()


def find_id(api_url, text):
    _, page, _ = request("GET", f"{api_url}/messages/1?limit=100")
    return next(m["id"] for m in page if m["message"] == text)


def close_sockets_of_group(api_url, group):
    """Closes every socket of `group` through the Management API, as the backend would
    (API Gateway closing a connection); their ids come from the connections table."""
    endpoint = env("DYNAMODB_ENDPOINT")
    table = os.environ.get("CONNECTIONS_TABLE", "chat-connections")
    items = dynamodb(endpoint, "Scan", {
        "TableName": table,
        "FilterExpression": "group_id = :g",
        "ExpressionAttributeValues": {":g": {"N": str(group)}},
    })["Items"]
    closed = 0
    for connection in items:
        connection_id = urllib.parse.quote(connection["connection_id"]["S"], safe="")
        url = f"{env('WS_MANAGEMENT_ENDPOINT').rstrip('/')}/@connections/{connection_id}"
        status, body, _ = request("DELETE", url, headers=sigv4.sign("DELETE", url))
        assert status in (204, 200, 410), (status, body)
        closed += status != 410
    return closed


def dynamodb(endpoint, operation, body):
    data = json.dumps(body).encode()
    headers = sigv4.sign("POST", endpoint, data, service="dynamodb", headers={
        "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        "Content-Type": "application/x-amz-json-1.0",
    })
    req = urllib.request.Request(endpoint, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.load(response)


def test_signing_in_with_a_token_where_identity_is_verified(browser):
    # The gateway's second address verifies tokens, as API Gateway's JWT authorizer does.
    api = env("CHAT_API_URL_JWT").rstrip("/")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{api}/")
    # Without a token the user list is a 401: the page asks for a token instead.
    expect(page.locator("#token-form")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#pick-user")).to_be_hidden()
    page.locator("#token").fill("not.a.token")
    page.locator("#token-form button").click()
    expect(page.locator("#error")).to_contain_text("Cannot sign in", timeout=TIMEOUT)

    page.locator("#token").fill(chatctl("token", str(ALICE)).strip())
    page.locator("#token-form button").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(page.locator("#who")).to_have_text("Alice · group 1")
    text = f"signed in {uuid.uuid4().hex[:6]}"
    type_and_send(page, text)
    expect(item(page, text)).not_to_have_class(re.compile("pending"), timeout=TIMEOUT)
    # A reload keeps the session (the token is in this tab's session storage).
    page.reload()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT)
    expect(item(page, text)).to_have_count(1, timeout=TIMEOUT)
    context.close()

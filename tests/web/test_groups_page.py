"""Groups in the chat page, in a real Chromium against a real stack, each user in a window of
their own: creating a group, adding a member, presence dots, "… is typing", unread badges and
the read mark, moderation, and a removed member's page moving on."""

import re
import uuid

from playwright.sync_api import expect
from test_page import TIMEOUT, item, open_as, type_and_send

ALICE, CHARLIE = 1, 3  # Alice: group 1, may not delete; Charlie: group 2, may not delete
# The page reads the other groups' unread counts every 10 s.
BADGE_TIMEOUT = 25_000


def group_button(page, group_id):
    return page.locator(f'#groups button[data-group-id="{group_id}"]')


def create_group(page, name):
    """Creates a group in the page; its id, once it is the group on screen."""
    page.locator("#group-name").fill(name)
    page.locator("#new-group button").click()
    current = page.locator('#groups button[aria-current="true"]')
    expect(current.locator(".name")).to_have_text(name, timeout=TIMEOUT)
    return int(current.get_attribute("data-group-id"))


def add_member(page, user_id, role="member"):
    page.locator("#member-id").fill(str(user_id))
    page.locator("#member-role").select_option(role)
    page.locator("#add-member button").click()
    expect(page.locator(f'#members li[data-user-id="{user_id}"]')).to_be_visible(timeout=TIMEOUT)


def open_group(page, group_id):
    expect(group_button(page, group_id)).to_be_visible(timeout=BADGE_TIMEOUT)
    group_button(page, group_id).click()
    expect(page.locator("#who")).to_have_text(re.compile(f"group {group_id}$"))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT)


def test_a_group_is_made_shared_read_and_left_in_two_windows(browser, api_url):
    alice = open_as(browser, api_url, ALICE)
    group = create_group(alice, f"Team {uuid.uuid4().hex[:6]}")
    expect(alice.locator(f'#members li[data-user-id="{ALICE}"] small')).to_have_text("owner", timeout=TIMEOUT)
    add_member(alice, CHARLIE)

    charlie = open_as(browser, api_url, CHARLIE)
    open_group(charlie, group)
    # Charlie's socket on the group turns his dot green in Alice's window.
    expect(alice.locator(f'#members li[data-user-id="{CHARLIE}"] .dot')).to_have_class(
        re.compile("online"), timeout=TIMEOUT)
    # He types; she sees it; he sends; she reads it.
    charlie.locator("#text").press_sequentially("hel")
    expect(alice.locator("#typing")).to_have_text("Charlie is typing…", timeout=TIMEOUT)
    hello = f"hello team {uuid.uuid4().hex[:6]}"
    type_and_send(charlie, hello)
    expect(item(alice, hello)).to_have_count(1, timeout=TIMEOUT)
    expect(alice.locator("#typing")).to_have_text("", timeout=TIMEOUT)

    # Elsewhere, Alice gets an unread badge for what Charlie sends next; opening the group
    # reads it.
    group_button(alice, 1).click()
    expect(alice.locator("#who")).to_have_text("Alice · group 1")
    later = f"while you were away {uuid.uuid4().hex[:6]}"
    type_and_send(charlie, later)
    expect(group_button(alice, group).locator(".unread")).to_have_text("1", timeout=BADGE_TIMEOUT)
    group_button(alice, group).click()
    expect(item(alice, later)).to_have_count(1, timeout=TIMEOUT)
    expect(group_button(alice, group).locator(".unread")).to_have_count(0)

    # Alice removes Charlie: his window leaves the group for his own.
    alice.locator(f'#members li[data-user-id="{CHARLIE}"] button.remove').click()
    expect(alice.locator(f'#members li[data-user-id="{CHARLIE}"]')).to_have_count(0, timeout=TIMEOUT)
    expect(group_button(charlie, group)).to_have_count(0, timeout=TIMEOUT)
    expect(charlie.locator("#who")).to_have_text("Charlie · group 2", timeout=TIMEOUT)
    alice.context.close()
    charlie.context.close()


def test_an_owner_deletes_a_members_message_and_a_member_cannot_add(browser, api_url):
    alice = open_as(browser, api_url, ALICE)
    group = create_group(alice, f"Moderated {uuid.uuid4().hex[:6]}")
    add_member(alice, CHARLIE)
    charlie = open_as(browser, api_url, CHARLIE)
    open_group(charlie, group)
    expect(charlie.locator("#add-member")).to_be_hidden()
    expect(charlie.locator(f'#members li[data-user-id="{ALICE}"] button')).to_have_count(0)
    spam = f"buy now {uuid.uuid4().hex[:6]}"
    type_and_send(charlie, spam)
    mine = item(charlie, spam)
    expect(mine).not_to_have_class(re.compile("pending"), timeout=TIMEOUT)
    expect(mine.locator("button.delete")).to_have_count(0)  # Charlie may not delete
    theirs = item(alice, spam)
    expect(theirs).to_have_count(1, timeout=TIMEOUT)
    theirs.locator("button.delete").click()  # Alice owns the group
    expect(item(charlie, spam)).to_have_count(0, timeout=TIMEOUT)
    alice.context.close()
    charlie.context.close()


def test_a_user_signed_up_locally_has_a_group_of_their_own_and_sees_only_their_people():
    """`chatctl user add` does what the user pool's triggers do on AWS, and prints a token."""
    from conftest import chatctl, env, request

    api = env("CHAT_API_URL_JWT").rstrip("/")
    token = chatctl("user-add", "Zoë").strip()
    auth = {"Authorization": f"Bearer {token}"}
    status, groups, _ = request("GET", f"{api}/groups", headers=auth)
    assert status == 200, groups
    assert [(g["name"], g["role"], g["unread"]) for g in groups] == [("Zoë", "owner", 0)]
    status, people, _ = request("GET", f"{api}/users/", headers=auth)
    assert status == 200, people
    assert [p["name"] for p in people] == ["Zoë"], "a new user sees nobody else"
    assert people[0]["group_id"] == groups[0]["group_id"]
    status, sent, _ = request("POST", f"{api}/send-message/", {"message": "first words"}, headers=auth)
    assert (status, sent["group_id"]) == (202, groups[0]["group_id"])

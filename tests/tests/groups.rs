//! Groups and members end to end, as signed-in clients use them (the token-verifying address),
//! and in trust-client mode as the original app's clients would: creating a group, adding and
//! removing members through the log, unread counts and read marks, moderation, and a removed
//! member's sockets.

use std::time::Duration;

use chat_core::domain::User;
use chat_core::store::ConnectionReader;
use e2e_tests::{api_url, call_signed_in, eventually, fresh_user, http, jwt_api_url, local_issuer};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const HOUR: Duration = Duration::from_secs(3600);

/// A user and a token of theirs.
struct Person {
    user: User,
    token: String,
}

async fn person(can_delete: bool) -> Person {
    let user = fresh_user(can_delete).await;
    let token = local_issuer().token(user.user_id, HOUR);
    Person { user, token }
}

impl Person {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        call_signed_in(method, path, Some(&self.token), body).await
    }

    /// The caller's groups, by id.
    async fn groups(&self) -> Vec<Value> {
        let (status, body) = self.call(Method::GET, "/groups", None).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("list").clone()
    }

    async fn group(&self, g: u64) -> Option<Value> {
        self.groups()
            .await
            .into_iter()
            .find(|s| s["group_id"].as_u64() == Some(g))
    }

    async fn create(&self, name: &str) -> u64 {
        let (status, body) = self
            .call(Method::POST, "/groups", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["role"], "owner");
        body["group_id"].as_u64().expect("id")
    }

    /// Adds `who` with `role` and waits until they see the group.
    async fn add(&self, g: u64, who: &Person, role: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/groups/{g}/members"),
                Some(json!({"user_id": who.user.user_id, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        eventually("the new member sees the group", || async {
            who.group(g).await.is_some_and(|s| s["role"] == role)
        })
        .await;
    }

    /// Removes `who` from the group (oneself: leaves); the status.
    async fn remove(&self, g: u64, who: &Person) -> (u16, Value) {
        let path = format!("/groups/{g}/members/{}", who.user.user_id);
        self.call(Method::DELETE, &path, None).await
    }

    async fn send(&self, g: u64, text: &str) -> (u16, Value) {
        self.call(
            Method::POST,
            "/send-message/",
            Some(json!({"message": text, "group_id": g})),
        )
        .await
    }

    async fn socket(&self, g: u64) -> Result<e2e_tests::Socket, u16> {
        self.open(&format!("/?group_id={g}&token={}", self.token))
            .await
    }

    /// A socket that follows all the person's groups.
    async fn everywhere(&self) -> e2e_tests::Socket {
        self.open(&format!("/?token={}", self.token))
            .await
            .expect("handshake")
    }

    async fn open(&self, path: &str) -> Result<e2e_tests::Socket, u16> {
        let url = format!("{}{path}", jwt_api_url().replacen("http://", "ws://", 1),);
        match tokio_tungstenite::connect_async(url).await {
            Ok((socket, _)) => Ok(socket),
            Err(WsError::Http(response)) => Err(response.status().as_u16()),
            Err(e) => panic!("handshake: {e}"),
        }
    }
}

/// The next frame whose `event` is `event`, skipping others; `None` when the socket closes
/// first. Fails after 20 s.
async fn next_event(socket: &mut e2e_tests::Socket, event: &str) -> Option<Value> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("json");
                    if frame["event"] == event {
                        return Some(frame);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {event} frame within 20 s"))
}

#[tokio::test]
async fn a_group_is_created_joined_read_and_left() {
    let (owner, friend, stranger) = (person(true).await, person(true).await, person(true).await);
    let g = owner.create("Team ☕").await;
    let mine = owner.group(g).await.expect("listed");
    assert_eq!(
        (&mine["name"], &mine["unread"], &mine["last_message_id"]),
        (&json!("Team ☕"), &json!(0), &Value::Null)
    );
    let members = format!("/groups/{g}/members");
    let (status, _) = friend
        .call(
            Method::POST,
            &members,
            Some(json!({"user_id": friend.user.user_id})),
        )
        .await;
    assert_eq!(
        status, 404,
        "a non-member adds nobody: the group is not there for them"
    );
    owner.add(g, &friend, "member").await;
    let (status, list) = owner.call(Method::GET, &members, None).await;
    assert_eq!(status, 200);
    let roles: Vec<(u64, &str)> = list
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["user_id"].as_u64().expect("id"),
                m["role"].as_str().expect("role"),
            )
        })
        .collect();
    let mut expected = vec![
        (owner.user.user_id.get(), "owner"),
        (friend.user.user_id.get(), "member"),
    ];
    expected.sort_unstable();
    assert_eq!(roles, expected);

    // The friend writes in the new group; it is unread for the owner until read.
    let (status, sent) = friend.send(g, "hello team").await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["group_id"], g);
    let id = sent["message_id"].as_u64().expect("id");
    eventually("the owner sees one unread message", || async {
        owner
            .group(g)
            .await
            .is_some_and(|s| s["unread"] == 1 && s["last_message_id"] == id)
    })
    .await;
    let friends = friend.group(g).await.expect("listed");
    assert_eq!(friends["unread"], 0, "one's own messages are never unread");
    let (status, _) = owner
        .call(
            Method::PUT,
            &format!("/groups/{g}/read"),
            Some(json!({"message_id": id})),
        )
        .await;
    assert_eq!(status, 204);
    eventually("the read mark clears the count", || async {
        owner.group(g).await.is_some_and(|s| s["unread"] == 0)
    })
    .await;

    // A stranger reads, lists and sends nothing there.
    for (method, path, body) in [
        (Method::GET, format!("/messages/{g}"), None),
        (Method::GET, members.clone(), None),
        (
            Method::PUT,
            format!("/groups/{g}/read"),
            Some(json!({"message_id": id})),
        ),
    ] {
        let (status, _) = stranger.call(method, &path, body).await;
        assert_eq!(status, 404, "{path}: as if there were no such group");
    }
    assert_eq!(stranger.send(g, "let me in").await.0, 404);
    // A socket is refused by the authorizer's Deny, which API Gateway answers 403, for a group
    // that does not exist too.
    assert_eq!(stranger.socket(g).await.err(), Some(403));

    // The last owner may not leave; the friend may, and loses the group at once.
    let (status, body) = owner.remove(g, &owner).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = friend.remove(g, &friend).await;
    assert_eq!(status, 204);
    eventually("the friend no longer has the group", || async {
        friend.group(g).await.is_none()
    })
    .await;
    assert_eq!(friend.send(g, "still here?").await.0, 404);
    let (status, _) = friend
        .call(Method::GET, &format!("/messages/{g}"), None)
        .await;
    assert_eq!(status, 404);
    let first = friend.user.group_id.get();
    assert!(
        friend.group(first).await.is_some(),
        "the user's first group stays theirs"
    );
    let (status, sent) = friend
        .call(
            Method::POST,
            "/send-message/",
            Some(json!({"message": "home"})),
        )
        .await;
    assert_eq!((status, sent["group_id"].as_u64()), (202, Some(first)));
}

#[tokio::test]
async fn owners_and_admins_manage_members_and_moderate() {
    let (owner, admin, member) = (
        person(false).await,
        person(false).await,
        person(false).await,
    );
    let g = owner.create("Moderated").await;
    owner.add(g, &admin, "admin").await;
    let members = format!("/groups/{g}/members");
    let (status, _) = member
        .call(
            Method::POST,
            &members,
            Some(json!({"user_id": owner.user.user_id})),
        )
        .await;
    assert_eq!(status, 404, "not their group (yet)");
    admin.add(g, &member, "member").await;
    let (status, _) = member
        .call(
            Method::POST,
            &members,
            Some(json!({"user_id": admin.user.user_id})),
        )
        .await;
    assert_eq!(status, 403, "a member adds nobody");
    let (status, _) = admin.remove(g, &owner).await;
    assert_eq!(status, 403, "an admin does not remove an owner");
    let (status, _) = owner
        .call(
            Method::POST,
            &members,
            Some(json!({"user_id": 9_000_000_000_000_u64})),
        )
        .await;
    assert_eq!(status, 404, "an unknown user");
    let (status, _) = owner
        .call(
            Method::POST,
            &members,
            Some(json!({"user_id": member.user.user_id, "role": "owner"})),
        )
        .await;
    assert_eq!(
        status, 400,
        "owners are made no other way than by creating a group"
    );

    // The member may not delete (can_delete is false), not even their own message; the admin
    // deletes it, whatever their own flag.
    let (status, sent) = member.send(g, "spam").await;
    assert_eq!(status, 202);
    let id = sent["message_id"].as_u64().expect("id");
    let path = format!("/delete-message/{id}");
    let stored = || async {
        let (_, page) = owner
            .call(Method::GET, &format!("/messages/{g}"), None)
            .await;
        page.as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == id))
    };
    eventually("the message is stored", stored).await;
    assert_eq!(member.call(Method::DELETE, &path, None).await.0, 403);
    let (status, body) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 202, "{body}");
    eventually("the moderated message is gone", || async {
        !stored().await
    })
    .await;

    // The admin removes the member.
    let (status, _) = admin.remove(g, &member).await;
    assert_eq!(status, 204);
    eventually("the member is gone", || async {
        member.group(g).await.is_none()
    })
    .await;
}

#[tokio::test]
async fn membership_and_read_frames_reach_the_group_and_a_removed_members_socket_closes() {
    let (owner, member) = (person(true).await, person(true).await);
    let g = owner.create("Live").await;
    owner.add(g, &member, "member").await;
    let mut owners = owner.socket(g).await.expect("owner's socket");
    let mut members = member.socket(g).await.expect("member's socket");
    let (status, sent) = owner.send(g, "read me").await;
    assert_eq!(status, 202);
    let id = sent["message_id"].as_u64().expect("id");
    for socket in [&mut owners, &mut members] {
        let created = next_event(socket, "created").await.expect("created");
        assert_eq!(created["id"], id);
    }
    let (status, _) = member
        .call(
            Method::PUT,
            &format!("/groups/{g}/read"),
            Some(json!({"message_id": id})),
        )
        .await;
    assert_eq!(status, 204);
    let read = next_event(&mut owners, "read").await.expect("read frame");
    assert_eq!(
        read,
        json!({"event": "read", "group_id": g, "user_id": member.user.user_id, "message_id": id})
    );

    let (status, _) = owner.remove(g, &member).await;
    assert_eq!(status, 204);
    let removed = json!({"event": "member_removed", "group_id": g, "user_id": member.user.user_id, "role": "member"});
    assert_eq!(
        next_event(&mut owners, "member_removed").await,
        Some(removed.clone())
    );
    assert_eq!(
        next_event(&mut members, "member_removed").await,
        Some(removed)
    );
    assert_eq!(
        next_event(&mut members, "created").await,
        None,
        "the removed member's socket closes after the removal"
    );
    let (status, _) = owner.send(g, "after").await;
    assert_eq!(status, 202);
    let after = next_event(&mut owners, "created")
        .await
        .expect("the owner's socket lives on");
    assert_eq!(after["message"], "after");
    assert_eq!(member.socket(g).await.err(), Some(403));
}

#[tokio::test]
async fn trust_client_mode_names_the_caller_as_the_original_app_did() {
    let (owner, friend) = (fresh_user(true).await, fresh_user(true).await);
    let api = api_url();
    let client = http();
    let g = e2e_tests::create_group(owner.user_id, "Open").await;
    let added = client
        .post(format!(
            "{api}/groups/{g}/members?user_id={}",
            owner.user_id
        ))
        .json(&json!({"user_id": friend.user_id}))
        .send()
        .await
        .expect("add");
    assert_eq!(added.status(), 201);
    eventually("the friend lists the group", || async {
        let list: Value = client
            .get(format!("{api}/groups?user_id={}", friend.user_id))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        list.as_array()
            .is_some_and(|l| l.iter().any(|s| s["group_id"] == g))
    })
    .await;
    let without = client
        .get(format!("{api}/groups"))
        .send()
        .await
        .expect("list");
    assert_eq!(
        without.status(),
        400,
        "a caller is needed to list one's groups"
    );
}

#[tokio::test]
async fn presence_and_typing_reach_the_others_and_are_never_stored() {
    use futures_util::SinkExt;
    let (owner, member) = (person(true).await, person(true).await);
    let g = owner.create("Chatty").await;
    owner.add(g, &member, "member").await;
    let mut owners = owner.socket(g).await.expect("owner's socket");
    let mut members = member.socket(g).await.expect("member's socket");
    let online = next_event(&mut owners, "presence").await.expect("presence");
    assert_eq!(
        online,
        json!({"event": "presence", "group_id": g, "user_id": member.user.user_id, "online": true})
    );
    let (status, list) = owner
        .call(Method::GET, &format!("/groups/{g}/members"), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().all(|m| m["online"] == true)),
        "{list}"
    );

    // Frames the chat does not use reach no function and get no answer (the original app
    // ignored what a client sent); the socket stays open.
    for junk in ["ping", r#"{"action": "sendMessage", "group_id": 1}"#, "{}"] {
        members
            .send(Message::Text(junk.into()))
            .await
            .expect("junk sent");
    }
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(500), members.next()).await;
    assert!(quiet.is_err(), "an answer to an unused frame: {quiet:?}");
    let typing = json!({"action": "typing", "group_id": g}).to_string();
    members
        .send(Message::Text(typing.clone().into()))
        .await
        .expect("typing sent");
    let heard = next_event(&mut owners, "typing").await.expect("typing");
    assert_eq!(
        heard,
        json!({"event": "typing", "group_id": g, "user_id": member.user.user_id, "name": member.user.name})
    );
    let (_, history) = owner
        .call(Method::GET, &format!("/messages/{g}"), None)
        .await;
    assert_eq!(history, json!([]), "typing is never stored");

    members.close(None).await.expect("closed");
    let offline = next_event(&mut owners, "presence").await.expect("presence");
    assert_eq!(offline["online"], false);
    assert_eq!(offline["user_id"], member.user.user_id.get());
}

/// The `created` frames' texts up to and including `last`; fails after 20 s.
async fn texts_until(socket: &mut e2e_tests::Socket, last: &str) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    loop {
        let frame = next_event(socket, "created")
            .await
            .unwrap_or_else(|| panic!("closed before {last:?}; saw {seen:?}"));
        let text = frame["message"].as_str().expect("text").to_owned();
        seen.push((frame["group_id"].as_u64().expect("group"), text.clone()));
        if text == last {
            return seen;
        }
    }
}

#[tokio::test]
async fn a_socket_without_a_group_follows_all_its_users_groups_as_they_join_and_leave() {
    let (owner, friend) = (person(true).await, person(true).await);
    let home = friend.user.group_id.get();
    let mut everywhere = friend.everywhere().await;
    let g = owner.create("Joined later").await;
    owner.add(g, &friend, "member").await;
    let added = next_event(&mut everywhere, "member_added")
        .await
        .expect("open");
    assert_eq!(
        (added["group_id"].as_u64(), added["user_id"].as_u64()),
        (Some(g), Some(friend.user.user_id.get()))
    );
    assert_eq!(owner.send(g, "welcome").await.0, 202);
    assert_eq!(friend.send(home, "at home").await.0, 202);
    let mut seen = texts_until(&mut everywhere, "at home").await;
    let mut expected = vec![(home, "at home".to_owned()), (g, "welcome".to_owned())];
    seen.sort_unstable();
    expected.sort_unstable();
    assert_eq!(seen, expected, "both groups reach the one socket");

    // Removed from the group: the socket stops following it, and stays open for the rest.
    let (status, _) = owner.remove(g, &friend).await;
    assert_eq!(status, 204);
    let removed = next_event(&mut everywhere, "member_removed")
        .await
        .expect("still open");
    assert_eq!(removed["group_id"].as_u64(), Some(g));
    let (status, after) = owner.send(g, "not for the friend").await;
    assert_eq!(status, 202);
    let id = after["message_id"].as_u64().expect("id");
    eventually("the owner's message is stored", || async {
        let (_, page) = owner
            .call(Method::GET, &format!("/messages/{g}"), None)
            .await;
        page.as_array()
            .is_some_and(|m| m.iter().any(|m| m["id"] == id))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(friend.send(home, "still here").await.0, 202);
    assert_eq!(
        texts_until(&mut everywhere, "still here").await,
        [(home, "still here".to_owned())],
        "nothing of the group left after the removal"
    );

    // Without a token nothing opens; in trust-client mode, `/subscribe?user_id=` does.
    assert_eq!(friend.open("/").await.err(), Some(401));
    let mut trusted =
        e2e_tests::subscribe(&format!("/subscribe?user_id={}", friend.user.user_id)).await;
    assert_eq!(friend.send(home, "trusted").await.0, 202);
    assert_eq!(
        texts_until(&mut trusted, "trusted").await,
        [(home, "trusted".to_owned())]
    );
}

/// A socket lives as long as the token that opened it (5 s here): after its expiry it gets no
/// more of the group and is closed, while a socket opened with a longer token goes on.
#[tokio::test]
async fn a_socket_ends_when_the_token_that_opened_it_expires() {
    let (owner, member) = (person(true).await, person(true).await);
    let g = owner.create("Short-lived").await;
    owner.add(g, &member, "member").await;
    let brief = Person {
        user: member.user.clone(),
        token: local_issuer().token(member.user.user_id, Duration::from_secs(5)),
    };
    let opened = std::time::Instant::now();
    let mut short = brief.socket(g).await.expect("handshake");
    let mut long = owner.socket(g).await.expect("owner's socket");
    let (status, body) = owner.send(g, "while the token holds").await;
    assert_eq!(status, 202, "{body}");
    let got = next_event(&mut short, "created").await.unwrap_or_else(|| {
        panic!(
            "closed after {:?}, before the first message",
            opened.elapsed()
        )
    });
    assert_eq!(got["message"], "while the token holds");
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(opened.elapsed())).await;
    let (status, body) = owner.send(g, "after the token").await;
    assert_eq!(status, 202, "{body}");
    for expected in ["while the token holds", "after the token"] {
        let frame = next_event(&mut long, "created").await.expect("a frame");
        assert_eq!(frame["message"], expected);
    }
    // The expired socket: closed, never given the later message.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match short.next().await {
                Some(Ok(Message::Text(text))) => {
                    assert!(
                        !text.contains("after the token"),
                        "given past its token: {text}"
                    )
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the expired socket was still open 20 s after the later message was pushed"
    );
}

/// 50 handshakes of one user at once: each is accepted or refused with 429 (the connect
/// limit, or newer sockets filling the cap), and at most `MAX_SOCKETS_PER_USER` (5) stay open
/// and listed for the group's messages, the others closed or refused.
#[tokio::test]
async fn fifty_parallel_connects_of_one_user_leave_at_most_the_cap_open() {
    let (owner, flood) = (person(true).await, person(true).await);
    let g = owner.create("Many tabs").await;
    owner.add(g, &flood, "member").await;
    let attempts = futures_util::future::join_all((0..50).map(|_| flood.socket(g))).await;
    let refused: Vec<u16> = attempts
        .iter()
        .filter_map(|a| a.as_ref().err())
        .copied()
        .collect();
    assert!(refused.iter().all(|&s| s == 429), "refusals: {refused:?}");
    let mut accepted: Vec<e2e_tests::Socket> =
        attempts.into_iter().filter_map(Result::ok).collect();
    assert!(!accepted.is_empty());
    let (status, body) = owner.send(g, "to every open tab").await;
    assert_eq!(status, 202, "{body}");
    let reached = futures_util::future::join_all(accepted.iter_mut().map(|socket| async move {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("to every open tab") => {
                        return true
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }))
    .await
    .into_iter()
    .filter(|&got| got)
    .count();
    let stored = e2e_tests::store()
        .await
        .connections_for_group(chat_core::domain::GroupId::new(i128::from(g)).expect("id"))
        .await
        .expect("listed")
        .into_iter()
        .filter(|c| c.user_id == Some(flood.user.user_id))
        .count();
    println!(
        "50 parallel connects: {} refused, {} accepted, {reached} open and reached, {stored} listed",
        refused.len(),
        accepted.len()
    );
    assert!((1..=5).contains(&reached), "{reached} sockets reached");
    assert_eq!(stored, reached, "listed sockets are the open ones");
}

/// Typing on a socket past its token's expiry closes it (`ws-default`, through the Management
/// API under its own role) and reaches nobody.
#[tokio::test]
async fn typing_on_a_socket_past_its_token_closes_it() {
    use futures_util::SinkExt;
    let (owner, member) = (person(true).await, person(true).await);
    let g = owner.create("Typing late").await;
    owner.add(g, &member, "member").await;
    let brief = Person {
        user: member.user.clone(),
        token: local_issuer().token(member.user.user_id, Duration::from_secs(3)),
    };
    let opened = std::time::Instant::now();
    let mut short = brief.socket(g).await.expect("handshake");
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(opened.elapsed())).await;
    let typing = json!({"action": "typing", "group_id": g}).to_string();
    short
        .send(Message::Text(typing.into()))
        .await
        .expect("typing sent");
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match short.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the expired socket was still open 20 s after typing on it"
    );
}

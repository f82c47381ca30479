//! What is kept only for the original app's clients, in one place: each behaviour, why it is
//! kept, and how to turn it off ([`KEPT`], also `docs/compat.md`). A deployment whose clients
//! all speak the documented API turns them off with `COMPAT_OFF` (a comma-separated list of
//! the names below, or `all`); `trust-client` is `AUTH_MODE`'s, and the template never deploys
//! it.

use crate::domain::{Group, GroupId, Member, Role, User, UserId};

/// One behaviour kept for the original app's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Its name in `COMPAT_OFF` (or, for `trust-client`, the switch that governs it).
    pub name: &'static str,
    pub what: &'static str,
    pub why: &'static str,
    /// What turning it off does.
    pub off: &'static str,
}

/// Every behaviour kept only for the original app's clients.
pub const KEPT: &[Kept] = &[
    Kept {
        name: "trust-client",
        what: "AUTH_MODE=trust-client: requests without a token act as the user_id they name, \
               and anyone may read any group's history and subscribe to any group",
        why: "the original app had no identity; its clients send no token",
        off: "AUTH_MODE=jwt, the default and the only mode the template deploys",
    },
    Kept {
        name: "query-parameters",
        what: "edit-message and delete-message take user_id and new_text as query parameters \
               (as the original took them), besides a JSON body",
        why: "the original app's clients send PUT /edit-message/{id}?user_id=..&new_text=..",
        off: "COMPAT_OFF=query-parameters: only the JSON body is read; a query parameter is a 400",
    },
    Kept {
        name: "bare-records",
        what: "a chat-topic record in the original app's shape, {\"user_id\", \"message\"} with \
               no type, is applied as a send to the user's group",
        why: "producers of the original app write such records straight to Kafka",
        off: "COMPAT_OFF=bare-records: such a record goes to the dead-letter topic",
    },
    Kept {
        name: "subscribe-path",
        what: "the local WebSocket API also answers at /subscribe/{group_id}, the original \
               app's URL, and at /subscribe for all the user's groups (AWS's WebSocket APIs \
               have one path: ?group_id= there, or no group_id for all)",
        why: "the original app's clients open ws://host/subscribe/{group_id}",
        off: "COMPAT_OFF=subscribe-path: only ws://host/ (with or without ?group_id=) is \
              served, as on AWS",
    },
    Kept {
        name: "seed-users",
        what: "set-up creates the original app's four users (Alice, Bob, Charlie, David) in \
               two groups",
        why: "the original app's clients and examples use user ids 1 to 4 and groups 1 and 2",
        off: "COMPAT_OFF=seed-users: chatctl setup creates no users",
    },
];

/// Which kept behaviours are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    pub query_parameters: bool,
    pub bare_records: bool,
    pub subscribe_path: bool,
    pub seed_users: bool,
}

impl Default for Compat {
    /// All on, as the original app's clients need.
    fn default() -> Self {
        Self {
            query_parameters: true,
            bare_records: true,
            subscribe_path: true,
            seed_users: true,
        }
    }
}

impl Compat {
    /// From `COMPAT_OFF`'s value: the names of [`KEPT`] to turn off, or `all`.
    pub fn parse_off(value: Option<&str>) -> Result<Self, String> {
        let mut compat = Self::default();
        for name in value
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            match name {
                "all" => {
                    compat = Self {
                        query_parameters: false,
                        bare_records: false,
                        subscribe_path: false,
                        seed_users: false,
                    }
                }
                "query-parameters" => compat.query_parameters = false,
                "bare-records" => compat.bare_records = false,
                "subscribe-path" => compat.subscribe_path = false,
                "seed-users" => compat.seed_users = false,
                "trust-client" => {
                    return Err("trust-client is AUTH_MODE's: set AUTH_MODE=jwt".into());
                }
                other => {
                    return Err(format!(
                        "`{other}` is none of all, query-parameters, bare-records, \
                         subscribe-path, seed-users"
                    ))
                }
            }
        }
        Ok(compat)
    }

    /// From the process environment's `COMPAT_OFF`.
    pub fn from_env() -> Result<Self, String> {
        Self::parse_off(std::env::var("COMPAT_OFF").ok().as_deref())
    }
}

/// The original app's four users, each alone in one of two groups (`seed-users`).
pub fn seed_users() -> Vec<User> {
    let user = |id: u64, name: &str, group: u64, can_edit: bool, can_delete: bool| User {
        user_id: UserId::from_trusted(id),
        name: name.to_owned(),
        group_id: GroupId::from_trusted(group),
        can_edit,
        can_delete,
    };
    vec![
        user(1, "Alice", 1, true, false),
        user(2, "Bob", 1, true, true),
        user(3, "Charlie", 2, true, false),
        user(4, "David", 2, true, true),
    ]
}

/// The groups of [`seed_users`].
pub fn seed_groups() -> Vec<Group> {
    [1u64, 2]
        .into_iter()
        .map(|id| Group {
            group_id: GroupId::from_trusted(id),
            name: format!("Group {id}"),
        })
        .collect()
}

/// The memberships of [`seed_users`]: each a member of their group (the original app had no
/// roles; nobody there is an owner).
pub fn seed_members() -> Vec<Member> {
    seed_users()
        .into_iter()
        .map(|u| Member {
            group_id: u.group_id,
            user_id: u.user_id,
            role: Role::Member,
            read_mark: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_off_turns_off_what_it_names_and_refuses_the_rest() {
        assert_eq!(Compat::parse_off(None), Ok(Compat::default()));
        let off = Compat::parse_off(Some("query-parameters, seed-users")).expect("valid");
        assert!(!off.query_parameters && !off.seed_users);
        assert!(off.bare_records && off.subscribe_path);
        let all = Compat::parse_off(Some("all")).expect("valid");
        assert!(
            !all.query_parameters && !all.bare_records && !all.subscribe_path && !all.seed_users
        );
        assert!(Compat::parse_off(Some("trust-client")).is_err());
        assert!(Compat::parse_off(Some("everything")).is_err());
    }

    #[test]
    fn seed_users_are_the_original_four() {
        let users = seed_users();
        let names: Vec<_> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["Alice", "Bob", "Charlie", "David"]);
        assert!(users[1].can_delete && !users[0].can_delete);
        assert!(users
            .iter()
            .all(|u| seed_groups().iter().any(|g| u.group_id == g.group_id)));
        assert!(seed_members()
            .iter()
            .zip(&users)
            .all(|(m, u)| m.user_id == u.user_id && m.group_id == u.group_id));
    }

    #[test]
    fn every_switch_of_compat_off_is_a_kept_behaviour() {
        for name in [
            "query-parameters",
            "bare-records",
            "subscribe-path",
            "seed-users",
        ] {
            assert!(KEPT.iter().any(|k| k.name == name), "{name}");
        }
    }
}

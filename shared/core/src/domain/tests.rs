use super::*;

#[test]
fn ids_accept_the_javascript_safe_range_only() {
    assert_eq!(UserId::new(1).map(UserId::get), Ok(1));
    assert_eq!(
        GroupId::new(i128::from(MAX_ID)).map(GroupId::get),
        Ok(MAX_ID)
    );
    for bad in [0, -1, i128::from(MAX_ID) + 1, i128::from(u64::MAX)] {
        assert!(MessageId::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn ids_parse_from_path_segments() {
    assert_eq!("42".parse::<GroupId>().map(GroupId::get), Ok(42));
    assert_eq!("+7".parse::<GroupId>().map(GroupId::get), Ok(7));
    for bad in [
        "",
        "-",
        "abc",
        "1.5",
        "1e3",
        "-3",
        "0",
        " 1",
        "9007199254740992",
        "99999999999999999999999999999999999999999",
    ] {
        let err = bad.parse::<MessageId>().expect_err(bad);
        assert!(err.0.starts_with("message_id"), "{err}");
    }
}

#[test]
fn ids_deserialize_only_from_in_range_integers() {
    assert_eq!(
        serde_json::from_str::<UserId>("3").map(UserId::get).ok(),
        Some(3)
    );
    for bad in [
        "0",
        "-4",
        "9007199254740992",
        "1.5",
        "\"1\"",
        "null",
        "1e400",
    ] {
        assert!(serde_json::from_str::<UserId>(bad).is_err(), "{bad}");
    }
}

#[test]
fn message_ids_round_trip_through_kafka_coordinates() {
    for (partition, offset) in [(0, 0), (3, 0), (0, 1), (1023, 99_999), (7, 8_000_000_000)] {
        let c = RecordCoordinates { partition, offset };
        let id = MessageId::from_coordinates(c).expect("in range");
        assert_eq!(id.coordinates(), c);
    }
    assert_eq!(
        MessageId::from_coordinates(RecordCoordinates {
            partition: 0,
            offset: 0
        })
        .map(MessageId::get),
        Ok(1)
    );
}

#[test]
fn message_ids_increase_with_the_offset_within_a_partition() {
    let id = |offset| {
        MessageId::from_coordinates(RecordCoordinates {
            partition: 2,
            offset,
        })
        .expect("in range")
    };
    assert!(id(0) < id(1) && id(1) < id(1000));
}

#[test]
fn message_ids_refuse_impossible_coordinates() {
    for (partition, offset) in [(-1, 0), (1024, 0), (0, -1), (0, i64::MAX)] {
        assert!(
            MessageId::from_coordinates(RecordCoordinates { partition, offset }).is_err(),
            "{partition}/{offset}"
        );
    }
}

#[test]
fn message_text_rules() {
    assert!(MessageText::new("Hello!").is_ok());
    assert!(MessageText::new("line one\nline two\ttabbed\r\n").is_ok());
    assert!(MessageText::new("日本語 😀 ñ").is_ok());
    assert!(MessageText::new("é".repeat(MAX_MESSAGE_CHARS)).is_ok());
    assert!(MessageText::new("").is_err());
    assert!(MessageText::new(" \n\t ").is_err());
    assert!(MessageText::new("x".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
    let err = MessageText::new("nul\0byte").expect_err("control character");
    assert!(err.0.contains("U+0000"), "{err}");
    assert!(MessageText::new("bell\u{7}").is_err());
}

#[test]
fn message_serializes_in_the_original_shape_plus_timestamps() {
    let created_at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .expect("valid")
        .with_timezone(&Utc);
    let message = Message {
        id: MessageId(3),
        user_id: UserId(1),
        name: "Alice".into(),
        group_id: GroupId(1),
        message: MessageText::new("Hello!").expect("valid"),
        can_edit: true,
        can_delete: false,
        created_at,
        edited_at: None,
    };
    let json = serde_json::to_value(&message).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"id": 3, "user_id": 1, "name": "Alice", "group_id": 1,
            "message": "Hello!", "can_edit": true, "can_delete": false,
            "created_at": "2026-01-02T03:04:05Z"})
    );
}

#[test]
fn only_authors_with_the_flag_may_change_their_messages() {
    let user = |id: u64, can_delete: bool| User {
        user_id: UserId(id),
        name: format!("user {id}"),
        group_id: GroupId(1),
        can_edit: true,
        can_delete,
    };
    let (alice, bob) = (&user(1, false), &user(2, true));
    let m = MessageId(7);
    let member = Some(Role::Member);
    assert_eq!(refusal(alice, member, alice.user_id, m, Change::Edit), None);
    assert!(refusal(alice, member, alice.user_id, m, Change::Delete)
        .is_some_and(|r| r.contains("may not delete")));
    assert_eq!(refusal(bob, member, bob.user_id, m, Change::Delete), None);
    assert!(refusal(bob, member, alice.user_id, m, Change::Edit)
        .is_some_and(|r| r.contains("only the author of message 7")));
}

#[test]
fn owners_and_admins_may_delete_any_message_of_their_group_but_not_edit_it() {
    let alice = &User {
        user_id: UserId(1),
        name: "Alice".into(),
        group_id: GroupId(1),
        can_edit: false,
        can_delete: false,
    };
    let m = MessageId(7);
    let author = UserId(2);
    for role in [Role::Owner, Role::Admin] {
        assert_eq!(refusal(alice, Some(role), author, m, Change::Delete), None);
        assert!(refusal(alice, Some(role), author, m, Change::Edit).is_some());
    }
    assert!(refusal(alice, Some(Role::Member), author, m, Change::Delete).is_some());
    assert!(refusal(alice, None, author, m, Change::Delete).is_some());
    assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
    assert!("root".parse::<Role>().is_err());
    assert!(Role::Owner.manages() && Role::Admin.manages() && !Role::Member.manages());
}

#[test]
fn group_names_are_trimmed_printable_and_bounded() {
    assert_eq!(group_name("  Team  ").as_deref(), Ok("Team"));
    assert!(group_name("   ").is_err());
    assert!(group_name("a\u{7}b").is_err());
    assert!(group_name(&"x".repeat(MAX_GROUP_NAME_CHARS + 1)).is_err());
    assert!(group_name(&"x".repeat(MAX_GROUP_NAME_CHARS)).is_ok());
    // The limit is on the name as sent, as the API documents' maxLength says (the fuzzer
    // found a 101-character name whose leading white space made it 100 once trimmed).
    let padded = format!("\u{b}{}", "x".repeat(MAX_GROUP_NAME_CHARS));
    assert!(group_name(&padded).is_err());
    assert!(group_name(&format!(" {}", "x".repeat(MAX_GROUP_NAME_CHARS - 1))).is_ok());
}

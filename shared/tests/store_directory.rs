//! Users and groups in DynamoDB Local.

use shared::domain::{seed_groups, seed_users, Group, GroupId, User, UserId};
use shared::store::Directory;

#[tokio::test]
async fn users_are_stored_read_back_and_listed_in_id_order() {
    let store = test_support::own_store().await;
    for user in seed_users().into_iter().rev() {
        store.put_user(&user).await.expect("put");
    }
    assert_eq!(store.list_users().await.expect("list"), seed_users());
    let bob = store
        .get_user(UserId::new(2).expect("id"))
        .await
        .expect("get");
    assert_eq!(bob.map(|u| u.name), Some("Bob".to_owned()));
}

#[tokio::test]
async fn an_unknown_user_is_none() {
    let store = test_support::own_store().await;
    let nobody = store
        .get_user(UserId::new(99).expect("id"))
        .await
        .expect("get");
    assert_eq!(nobody, None);
    assert!(store.list_users().await.expect("list").is_empty());
}

#[tokio::test]
async fn putting_a_user_again_replaces_it() {
    let store = test_support::own_store().await;
    let mut alice = seed_users()[0].clone();
    store.put_user(&alice).await.expect("put");
    alice.can_delete = true;
    alice.name = "Alice Liddell 🐇".into();
    store.put_user(&alice).await.expect("put again");
    assert_eq!(
        store.get_user(alice.user_id).await.expect("get"),
        Some(alice)
    );
    assert_eq!(store.list_users().await.expect("list").len(), 1);
}

#[tokio::test]
async fn groups_are_stored_apart_from_users() {
    let store = test_support::own_store().await;
    for group in seed_groups() {
        store.put_group(&group).await.expect("put group");
    }
    let user = User {
        user_id: UserId::new(1).expect("id"),
        name: "Only".into(),
        group_id: GroupId::new(1).expect("id"),
        can_edit: false,
        can_delete: false,
    };
    store.put_user(&user).await.expect("put user");
    assert_eq!(
        store
            .get_group(GroupId::new(2).expect("id"))
            .await
            .expect("get"),
        Some(Group {
            group_id: GroupId::new(2).expect("id"),
            name: "Group 2".into()
        })
    );
    assert_eq!(
        store
            .get_group(GroupId::new(3).expect("id"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(store.list_users().await.expect("list"), vec![user]);
}

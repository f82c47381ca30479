//! Claims of `client_message_id`s in DynamoDB Local: one claimant at a time, completion
//! remembered, a released or expired claim taken over.

use chrono::{Duration, Utc};
use shared::domain::{GroupId, MessageId, UserId};
use shared::store::SendClaims;
use shared::store::{AppliedSend, SendClaim, SendKey};

fn key(id: &str) -> SendKey {
    SendKey {
        user_id: UserId::new(1).expect("id"),
        client_message_id: id.to_owned(),
    }
}

#[tokio::test]
async fn the_first_claim_wins_and_completion_is_remembered() {
    let store = test_support::own_store().await;
    let lease = Duration::seconds(30);
    let now = Utc::now();
    assert_eq!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::Claimed)
    );
    assert_eq!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::InProgress)
    );
    let (group_id, message_id) = (
        GroupId::new(1).expect("id"),
        MessageId::new(77).expect("id"),
    );
    store
        .complete_send(&key("a"), group_id, message_id)
        .await
        .expect("complete");
    assert_eq!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::Done {
            group_id,
            message_id
        })
    );
    assert_eq!(
        store.claim_send(&key("a"), "other", now, lease).await,
        Ok(SendClaim::Conflict)
    );
    // A completed send is not released by a late failure path.
    store.release_send(&key("a")).await.expect("release");
    assert!(matches!(
        store.claim_send(&key("a"), "fp", now, lease).await,
        Ok(SendClaim::Done { .. })
    ));
}

#[tokio::test]
async fn a_released_or_expired_claim_can_be_taken_again() {
    let store = test_support::own_store().await;
    let lease = Duration::seconds(30);
    let now = Utc::now();
    assert_eq!(
        store.claim_send(&key("b"), "fp", now, lease).await,
        Ok(SendClaim::Claimed)
    );
    store.release_send(&key("b")).await.expect("release");
    assert_eq!(
        store.claim_send(&key("b"), "fp", now, lease).await,
        Ok(SendClaim::Claimed)
    );
    let later = now + Duration::seconds(31);
    assert_eq!(
        store.claim_send(&key("b"), "fp", later, lease).await,
        Ok(SendClaim::Claimed)
    );
    assert_eq!(
        store.claim_send(&key("b"), "fp", later, lease).await,
        Ok(SendClaim::InProgress)
    );
}

#[tokio::test]
async fn racing_claims_have_exactly_one_winner() {
    let store = test_support::own_store().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .claim_send(&key("race"), "fp", Utc::now(), Duration::seconds(30))
                .await
                .expect("claim")
        });
    }
    let mut winners = 0;
    while let Some(claim) = tasks.join_next().await {
        winners += usize::from(claim.expect("task") == SendClaim::Claimed);
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn the_first_record_of_a_send_is_the_message_and_a_repeat_is_told_so() {
    let store = test_support::own_store().await;
    let group_id = GroupId::new(1).expect("id");
    let (first, repeat) = (
        MessageId::new(5).expect("id"),
        MessageId::new(9).expect("id"),
    );
    // The stream processor applies the first record before the API completes its claim.
    assert_eq!(
        store
            .claim_send(&key("c"), "fp", Utc::now(), Duration::seconds(30))
            .await,
        Ok(SendClaim::Claimed)
    );
    assert_eq!(
        store.record_applied_send(&key("c"), group_id, first).await,
        Ok(AppliedSend::Recorded)
    );
    // The same record again (a retried batch) is still the send's message.
    assert_eq!(
        store.record_applied_send(&key("c"), group_id, first).await,
        Ok(AppliedSend::Recorded)
    );
    assert_eq!(
        store.record_applied_send(&key("c"), group_id, repeat).await,
        Ok(AppliedSend::Already {
            group_id,
            message_id: first
        })
    );
    assert_eq!(
        store.complete_send(&key("c"), group_id, repeat).await,
        Ok(AppliedSend::Already {
            group_id,
            message_id: first
        })
    );
    // A send the API never claimed (its claim expired) is recorded all the same.
    assert_eq!(
        store.record_applied_send(&key("d"), group_id, repeat).await,
        Ok(AppliedSend::Recorded)
    );
}

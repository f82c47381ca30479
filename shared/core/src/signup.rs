//! Sign-up without an administrator: an account of the identity provider (a Cognito user, or
//! a local one made by `chatctl user add`) becomes a chat user, with a group of their own as
//! their first group, so that the original app's shape (`group_id`) holds for them too.

use crate::domain::{display_name, Group, GroupId, User, UserId, MAX_ID};
use crate::error::ChatError;
use crate::store::Accounts;

/// Ids of signed-up users (and of their own groups, which share the number): above every
/// other id we hand out, below 2^53.
pub const SIGNED_UP_IDS: std::ops::RangeInclusive<u64> = 1_000_000_000_000..=MAX_ID;
/// Attempts at a free id before giving up.
const ATTEMPTS: usize = 5;

/// The chat user of `account`, signed up now as `name` unless it was before. Signed-up users
/// may edit and delete their own messages.
pub async fn sign_up(
    accounts: &dyn Accounts,
    account: &str,
    name: &str,
) -> Result<UserId, ChatError> {
    if let Some(existing) = accounts.account_user(account).await? {
        return Ok(existing);
    }
    let name = display_name("a user's name", name)?;
    for _ in 0..ATTEMPTS {
        let id = random_id();
        let user = User {
            user_id: UserId::new(i128::from(id))?,
            name: name.clone(),
            group_id: GroupId::new(i128::from(id))?,
            can_edit: true,
            can_delete: true,
        };
        let own = Group {
            group_id: user.group_id,
            name: name.clone(),
        };
        if let Some(user_id) = accounts.sign_up(account, &user, &own).await? {
            return Ok(user_id);
        }
    }
    Err(ChatError::Internal(
        "no free user id after several attempts".into(),
    ))
}

fn random_id() -> u64 {
    let (start, end) = (*SIGNED_UP_IDS.start(), *SIGNED_UP_IDS.end());
    start + uuid::Uuid::new_v4().as_u64_pair().0 % (end - start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Accounts whose first `taken` sign-ups find their ids taken.
    struct Fake {
        taken: Mutex<usize>,
        signed: Mutex<Vec<(String, User, Group)>>,
    }

    #[async_trait]
    impl Accounts for Fake {
        async fn account_user(&self, account: &str) -> Result<Option<UserId>, StoreError> {
            let signed = self.signed.lock().expect("lock");
            Ok(signed
                .iter()
                .find(|(a, ..)| a == account)
                .map(|(_, u, _)| u.user_id))
        }

        async fn sign_up(
            &self,
            account: &str,
            user: &User,
            first_group: &Group,
        ) -> Result<Option<UserId>, StoreError> {
            let mut taken = self.taken.lock().expect("lock");
            if *taken > 0 {
                *taken -= 1;
                return Ok(None);
            }
            let entry = (account.to_owned(), user.clone(), first_group.clone());
            self.signed.lock().expect("lock").push(entry);
            Ok(Some(user.user_id))
        }
    }

    #[tokio::test]
    async fn an_account_becomes_a_user_with_a_group_of_their_own_once() {
        let fake = Fake {
            taken: Mutex::new(2),
            signed: Mutex::new(Vec::new()),
        };
        let id = sign_up(&fake, "cognito:abc", "  Dana ")
            .await
            .expect("signed up");
        assert!(SIGNED_UP_IDS.contains(&id.get()));
        assert_eq!(sign_up(&fake, "cognito:abc", "Dana").await, Ok(id));
        let signed = fake.signed.lock().expect("lock");
        assert_eq!(signed.len(), 1);
        let (_, user, group) = &signed[0];
        assert_eq!((user.name.as_str(), group.name.as_str()), ("Dana", "Dana"));
        assert_eq!(user.group_id.get(), id.get());
        assert!(user.can_edit && user.can_delete);
    }

    #[tokio::test]
    async fn a_blank_name_is_refused_and_ids_run_out_as_an_error() {
        let fake = Fake {
            taken: Mutex::new(usize::MAX),
            signed: Mutex::new(Vec::new()),
        };
        let blank = sign_up(&fake, "cognito:x", " ").await.expect_err("blank");
        assert_eq!(blank.status(), 400);
        let full = sign_up(&fake, "cognito:x", "X").await.expect_err("no ids");
        assert_eq!(full.status(), 500);
    }
}

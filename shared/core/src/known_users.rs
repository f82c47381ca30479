//! Users a process read recently. The directory changes rarely and by hand, and a hot path (a
//! send, a batch of the stream processor) should not wait on it: a user read once is believed
//! for [`KNOWN_USER_TTL`]. Only users that exist are kept: an unknown id is asked again, so
//! that a user created meanwhile is found at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::{User, UserId};
use crate::store::{Directory, StoreError};

/// How long a user read from the directory is believed: a change of name, flags or group
/// reaches the functions that keep users within this time.
pub const KNOWN_USER_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct KnownUsers(Mutex<HashMap<UserId, (Instant, User)>>);

impl KnownUsers {
    /// The user if it was read within [`KNOWN_USER_TTL`].
    pub fn get(&self, id: UserId) -> Option<User> {
        let known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(&id)
            .filter(|(at, _)| at.elapsed() < KNOWN_USER_TTL)
            .map(|(_, user)| user.clone())
    }

    pub fn put(&self, user: &User) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(user.user_id, (Instant::now(), user.clone()));
    }

    /// The user, from the recent ones or else the directory (then kept).
    pub async fn user<S: Directory + ?Sized>(
        &self,
        store: &S,
        id: UserId,
    ) -> Result<Option<User>, StoreError> {
        if let Some(user) = self.get(id) {
            return Ok(Some(user));
        }
        let user = store.get_user(id).await?;
        if let Some(user) = &user {
            self.put(user);
        }
        Ok(user)
    }
}

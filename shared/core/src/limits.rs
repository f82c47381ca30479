//! Per-user rate limits: what one signed-in user may do how often, the same on AWS and locally.
//! Each action of each user has a token bucket (kept as GCRA's "theoretical arrival time", one
//! number per bucket, so that one conditional write decides): `burst` actions at once, then one
//! more per `interval`. The store keeps the buckets (`store::RateLimiter`), `guard::admit`
//! takes from them; every instance of every
//! function shares them, so a client spreading its requests over instances gains nothing.

use std::time::Duration;

/// One bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Actions allowed at once from a full bucket.
    pub burst: u32,
    /// One more action is allowed each interval.
    pub interval: Duration,
}

impl Limit {
    /// `burst:interval-ms`, as configured (`RATE_LIMIT_SEND=20:500`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (burst, interval) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not of the form <burst>:<milliseconds>"))?;
        let burst = burst
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|b| (1..=10_000).contains(b))
            .ok_or_else(|| format!("the burst in `{text}` is not a number from 1 to 10000"))?;
        let interval = interval
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=3_600_000).contains(ms))
            .ok_or_else(|| {
                format!(
                    "the interval in `{text}` is not a number of milliseconds from 1 to 3600000"
                )
            })?;
        Ok(Self {
            burst,
            interval: Duration::from_millis(interval),
        })
    }

    pub fn interval_ms(&self) -> i64 {
        i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX)
    }

    /// How far ahead of now a bucket's arrival time may be for one more action to pass.
    pub fn tolerance_ms(&self) -> i64 {
        self.interval_ms()
            .saturating_mul(i64::from(self.burst.saturating_sub(1)))
    }

    /// The `Retry-After` of a refusal, in whole seconds: a refused bucket frees a place within
    /// one interval.
    pub fn retry_after_seconds(&self) -> u32 {
        u32::try_from(self.interval.as_millis().div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    }
}

/// The actions limited per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send,
    Edit,
    Delete,
    Typing,
    Connect,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Send => "send",
            Action::Edit => "edit",
            Action::Delete => "delete",
            Action::Typing => "typing",
            Action::Connect => "connect",
        }
    }

    /// The variable that sets its limit.
    pub fn variable(self) -> &'static str {
        match self {
            Action::Send => "RATE_LIMIT_SEND",
            Action::Edit => "RATE_LIMIT_EDIT",
            Action::Delete => "RATE_LIMIT_DELETE",
            Action::Typing => "RATE_LIMIT_TYPING",
            Action::Connect => "RATE_LIMIT_CONNECT",
        }
    }
}

/// The limit of each action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub send: Limit,
    pub edit: Limit,
    pub delete: Limit,
    pub typing: Limit,
    pub connect: Limit,
}

impl RateLimits {
    pub fn of(&self, action: Action) -> Limit {
        match action {
            Action::Send => self.send,
            Action::Edit => self.edit,
            Action::Delete => self.delete,
            Action::Typing => self.typing,
            Action::Connect => self.connect,
        }
    }
}

/// The bucket's new arrival time if one more action passes now, or `None` when it may not.
/// `tat` is the bucket's arrival time (epoch milliseconds), `None` for a bucket never used.
pub fn gcra(tat: Option<i64>, now_ms: i64, limit: Limit) -> Option<i64> {
    gcra_n(tat, now_ms, limit, 1)
}

/// As [`gcra`], for `n` actions at once: all pass or none.
pub fn gcra_n(tat: Option<i64>, now_ms: i64, limit: Limit, n: u32) -> Option<i64> {
    let start = tat.map_or(now_ms, |tat| tat.max(now_ms));
    let more = limit
        .interval_ms()
        .saturating_mul(i64::from(n.saturating_sub(1)));
    (n >= 1 && start.saturating_add(more) <= now_ms.saturating_add(limit.tolerance_ms())).then(
        || {
            start
                .saturating_add(more)
                .saturating_add(limit.interval_ms())
        },
    )
}

/// The most actions one take leases to an instance: a fifth of the burst, at most 4, and none
/// (one action a take) for a burst under 20. A lease's unused actions stay with the instance
/// that took them (they were taken from the shared bucket, so the limit still holds): a user
/// whose next requests reach other instances finds up to 3 parked on each. Only a large
/// budget (sends, by default 20 at once) can spare that; edits, deletes, typing and connects
/// (10 or fewer) take one at a time.
pub fn lease_size_max(limit: Limit) -> u32 {
    if limit.burst < 20 {
        1
    } else {
        (limit.burst / 5).min(4)
    }
}

/// A user is active on an instance whose last take for them is this recent: their next take
/// there leases twice as many actions (up to [`lease_size_max`]).
pub const LEASE_ACTIVE_MS: i64 = 5_000;

/// What this process knows of the shared buckets, so that most takes need no store call:
/// - buckets it found empty, and until when it told the client to wait: the same user's same
///   action is refused again at once, for the rest of that `Retry-After`. A flood then costs
///   one write per interval, not two per request;
/// - actions leased to it: a user active here (a take in the last [`LEASE_ACTIVE_MS`]) takes
///   up to [`lease_size_max`] actions from the bucket in one write, and spends them here
///   without the store. A chatting user's sends then cost a write every few messages, not
///   one each (a write unit and ~10 ms on the send's way).
///
/// The shared bucket stays the one judge of what passes: nothing passes that was not taken
/// from it.
pub struct RefusalMemory<L: ?Sized> {
    limiter: std::sync::Arc<L>,
    refused: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    leases: std::sync::Mutex<std::collections::HashMap<String, Lease>>,
}

/// Actions of one bucket taken by this process and not yet spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    left: u32,
    /// The size of the last lease taken.
    size: u32,
    /// When the last action was taken (from the lease or the bucket).
    last_ms: i64,
}

/// How long a lease stays in memory unused once this process remembers many.
const LEASE_KEPT_MS: i64 = 60_000;

/// Refusals (and leases) remembered before the stale ones are dropped.
const REMEMBERED_REFUSALS: usize = 10_000;

impl<L: ?Sized> RefusalMemory<L> {
    pub fn new(limiter: std::sync::Arc<L>) -> Self {
        Self {
            limiter,
            refused: std::sync::Mutex::default(),
            leases: std::sync::Mutex::default(),
        }
    }

    /// Spends one leased action of `key`, if this process holds one.
    pub fn spend_leased(&self, key: &str, now_ms: i64) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get_mut(key) {
            Some(lease) if lease.left > 0 => {
                lease.left -= 1;
                lease.last_ms = now_ms;
                true
            }
            _ => false,
        }
    }

    /// How many actions of `key` to ask the bucket for now: one, unless the user is active
    /// here, then twice the last lease, up to the limit's largest.
    pub fn lease_size(&self, key: &str, limit: Limit, now_ms: i64) -> u32 {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get(key) {
            Some(lease) if now_ms.saturating_sub(lease.last_ms) <= LEASE_ACTIVE_MS => lease
                .size
                .saturating_mul(2)
                .min(lease_size_max(limit))
                .max(1),
            _ => 1,
        }
    }

    /// Keeps `taken` actions of `key` taken from the bucket at `now_ms`, one of which passes now.
    pub fn lease(&self, key: &str, taken: u32, now_ms: i64) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if leases.len() >= REMEMBERED_REFUSALS {
            // A lease unused this long is dropped with what it had left: those actions were
            // taken from the bucket, so dropping them only ever refuses more, never less.
            leases.retain(|_, lease| now_ms.saturating_sub(lease.last_ms) <= LEASE_KEPT_MS);
        }
        leases.insert(
            key.to_owned(),
            Lease {
                left: taken.saturating_sub(1),
                size: taken.max(1),
                last_ms: now_ms,
            },
        );
    }

    /// Whether `key` was refused here and its wait is not over at `now_ms`.
    pub fn still_refused(&self, key: &str, now_ms: i64) -> bool {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused.get(key).is_some_and(|until| *until > now_ms)
    }

    /// Remembers that `key` was refused at `now_ms`: its wait ends after one interval.
    pub fn remember(&self, key: &str, limit: Limit, now_ms: i64) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REMEMBERED_REFUSALS {
            refused.retain(|_, until| *until > now_ms);
        }
        refused.insert(key.to_owned(), now_ms.saturating_add(limit.interval_ms()));
    }

    pub fn limiter(&self) -> &L {
        &self.limiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(burst: u32, ms: u64) -> Limit {
        Limit {
            burst,
            interval: Duration::from_millis(ms),
        }
    }

    #[test]
    fn a_full_bucket_passes_its_burst_then_one_per_interval() {
        let l = limit(3, 100);
        let mut tat = None;
        for n in 0..3 {
            tat = Some(gcra(tat, 1_000, l).unwrap_or_else(|| panic!("action {n} of the burst")));
        }
        assert_eq!(gcra(tat, 1_000, l), None, "the fourth at once");
        assert_eq!(gcra(tat, 1_099, l), None, "not before an interval");
        let next = gcra(tat, 1_100, l).expect("one interval later");
        assert_eq!(gcra(Some(next), 1_100, l), None);
        // An idle bucket refills to its burst, no further.
        let mut tat = Some(next);
        for n in 0..3 {
            tat = Some(gcra(tat, 60_000, l).unwrap_or_else(|| panic!("refilled {n}")));
        }
        assert_eq!(gcra(tat, 60_000, l), None);
    }

    #[test]
    fn n_actions_pass_together_or_not_at_all() {
        let l = limit(4, 100);
        let tat = gcra_n(None, 1_000, l, 3).expect("3 of a full bucket of 4");
        assert_eq!(tat, 1_300);
        assert_eq!(gcra_n(Some(tat), 1_000, l, 2), None, "only 1 left");
        let tat = gcra_n(Some(tat), 1_000, l, 1).expect("the last one");
        assert_eq!(gcra(Some(tat), 1_000, l), None);
        assert_eq!(gcra_n(None, 1_000, l, 5), None, "more than the burst");
        assert_eq!(gcra_n(None, 1_000, l, 0), None);
    }

    #[test]
    fn leases_grow_while_a_user_is_active_and_only_for_large_budgets() {
        let memory = RefusalMemory::new(std::sync::Arc::new(()));
        let l = limit(20, 500);
        assert_eq!(memory.lease_size("k", l, 0), 1, "a user new here");
        memory.lease("k", 1, 0);
        assert!(
            !memory.spend_leased("k", 100),
            "a lease of 1 is spent at once"
        );
        assert_eq!(memory.lease_size("k", l, 100), 2);
        memory.lease("k", 2, 100);
        assert!(memory.spend_leased("k", 200));
        assert!(!memory.spend_leased("k", 300));
        assert_eq!(memory.lease_size("k", l, 300), 4);
        memory.lease("k", 4, 300);
        assert_eq!(
            memory.lease_size("k", l, 400),
            4,
            "at most a fifth of 20, at most 4"
        );
        assert_eq!(
            memory.lease_size("k", l, 300 + LEASE_ACTIVE_MS + 1),
            1,
            "idle again"
        );
        for (burst, most) in [(5, 1), (10, 1), (19, 1), (20, 4), (100, 4)] {
            assert_eq!(lease_size_max(limit(burst, 1000)), most, "burst {burst}");
        }
    }

    #[test]
    fn leases_of_many_users_are_dropped_once_unused_for_a_minute() {
        let memory = RefusalMemory::new(std::sync::Arc::new(()));
        for user in 0..REMEMBERED_REFUSALS {
            memory.lease(&format!("send#{user}"), 4, 0);
        }
        memory.lease("send#late", 4, LEASE_KEPT_MS + 1);
        assert!(!memory.spend_leased("send#0", LEASE_KEPT_MS + 2), "dropped");
        assert!(memory.spend_leased("send#late", LEASE_KEPT_MS + 2));
        let leases = memory.leases.lock().expect("lock");
        assert_eq!(leases.len(), 1);
    }

    #[test]
    fn limits_are_parsed_and_give_their_retry_after() {
        assert_eq!(Limit::parse("20:500"), Ok(limit(20, 500)));
        for bad in ["20", "0:500", "20:0", "x:1", "20:-1", "20:5000000"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(limit(20, 500).retry_after_seconds(), 1);
        assert_eq!(limit(10, 6000).retry_after_seconds(), 6);
    }
}

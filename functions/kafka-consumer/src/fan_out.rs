//! Fan-out: each group's frames, in order, to each of its connections, connections
//! concurrently (bounded). One connection's trouble costs only that connection:
//! - a push that fails (429, 5xx, a timeout) is retried [`PUSH_ATTEMPTS`] times in all, then
//!   the connection is cut off (`DELETE @connections/{id}`, its row deleted): its client
//!   reconnects and reads the history it missed;
//! - `410 Gone` forgets the connection, unless it is younger than [`CONNECT_WINDOW`]: a socket
//!   whose `$connect` has run but whose handshake has not finished yet is retried until then;
//! - the whole fan-out of a batch ends within [`FAN_OUT_BUDGET`]; a connection still owed frames
//!   then is cut off. Storing never waits on it: the batch is applied before it fans out.
//!
//! A member removed from a group gets the group's frames up to their `member_removed`, then
//! their sockets opened on the group are closed and their all-groups sockets stop following it:
//! nothing of the group reaches them after it. A member added is subscribed with each of their
//! all-groups sockets, which get the group's frames from their `member_added` on.

use std::time::{Duration, Instant};

use chat_core::domain::{Connection, GroupId, UserId};
use chat_core::push::{Frame, PushError, Pusher};
use chat_core::trace::{now_us, Trace};
use chrono::Utc;
use futures_util::stream::{self, StreamExt};

use crate::batch::Record;
use crate::{ProcessError, Processor};

/// Connections pushed to at once.
pub const PUSH_CONCURRENCY: usize = 64;
/// Attempts at one frame before its connection is cut off.
pub const PUSH_ATTEMPTS: u32 = 3;
/// Pause after a failed attempt, times the attempt's number.
pub const PUSH_BACKOFF: Duration = Duration::from_millis(100);
/// How long after `$connect` a `410` may just mean "handshake not finished".
pub const CONNECT_WINDOW: Duration = Duration::from_secs(5);
/// The longest a batch spends pushing (the function's timeout is 60 s).
pub const FAN_OUT_BUDGET: Duration = Duration::from_secs(15);

/// A frame to push, with the stamps of the record it comes from when that is traced.
pub(crate) struct Outgoing {
    pub frame: Frame,
    pub trace: Option<Trace>,
}

impl Outgoing {
    /// The frame of what `record` did, once that is stored.
    pub(crate) fn stored(frame: Frame, record: &Record) -> Self {
        let trace = record.trace.clone().map(|mut trace| {
            trace.stamp("stored");
            trace
        });
        Self { frame, trace }
    }

    /// The frame's text; a traced one says when the fan-out started (`pushing_us`).
    fn to_json(&self, pushing_us: i64) -> Vec<u8> {
        match &self.trace {
            None => self.frame.to_json(),
            Some(trace) => {
                let mut trace = trace.clone();
                trace.stamp_at("pushing", pushing_us);
                self.frame.to_json_traced(Some(&trace))
            }
        }
    }
}

/// What a fan-out did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    pub pushed: usize,
    pub gone: usize,
    pub cut_off: usize,
    /// Sockets past their end (token expiry or two hours): closed, not pushed to.
    pub expired: usize,
}

/// How one connection's delivery ended.
enum Delivery {
    Done(usize),
    Gone(usize),
    CutOff(usize, String),
    /// Its user is no longer a member: closed after the frame that says so.
    Ended(usize),
    /// Past its end (its token expired, or two hours): closed, given nothing.
    Expired,
    /// Its user is no longer a member; the socket follows all their groups, and stops
    /// following this one after the frame that says so.
    Left(usize),
}

impl Processor {
    /// Pushes each group's frames, in order, to each of its connections. Fails only when the
    /// connections cannot be listed (the store is down): the batch is then retried.
    pub(crate) async fn fan_out(
        &self,
        pusher: &dyn Pusher,
        frames: Vec<Outgoing>,
    ) -> Result<FanOut, ProcessError> {
        let deadline = Instant::now() + FAN_OUT_BUDGET;
        let mut grouped: Vec<(GroupId, Vec<Outgoing>)> = Vec::new();
        for outgoing in frames {
            let group = outgoing.frame.group_id();
            match grouped.iter_mut().find(|(g, _)| *g == group) {
                Some((_, list)) => list.push(outgoing),
                None => grouped.push((group, vec![outgoing])),
            }
        }
        // (connection, index of its group's frames, first of them it gets): owned items, so
        // that the future stays Send for the runtime (a borrowed item trips the compiler's
        // higher-ranked check).
        let mut deliveries: Vec<(Connection, usize, usize)> = Vec::new();
        for (index, (group, list)) in grouped.iter().enumerate() {
            let mut listed: Vec<(Connection, usize, usize)> = self
                .store
                .group_subscriptions(*group)
                .await?
                .into_iter()
                .map(|connection| (connection, index, 0))
                .collect();
            // A member added: their all-groups sockets follow the group from that frame on.
            for (at, user) in list
                .iter()
                .enumerate()
                .filter_map(|(at, o)| o.frame.adds().map(|user| (at, user)))
            {
                for subscription in self.store.follow_group(user, *group).await? {
                    match listed
                        .iter_mut()
                        .find(|(c, _, _)| c.connection_id == subscription.connection_id)
                    {
                        Some((_, _, from)) => *from = at,
                        None => listed.push((subscription, index, at)),
                    }
                }
            }
            deliveries.extend(listed);
        }
        let pushing_us = now_us();
        let by_group: Vec<(GroupId, Vec<Vec<u8>>)> = grouped
            .iter()
            .map(|(group, list)| (*group, list.iter().map(|o| o.to_json(pushing_us)).collect()))
            .collect();
        // Per group, where each removed member's frames end.
        let removals: Vec<Vec<(UserId, usize)>> = grouped
            .iter()
            .map(|(_, list)| {
                list.iter()
                    .enumerate()
                    .filter_map(|(at, o)| o.frame.removes().map(|user| (user, at)))
                    .collect()
            })
            .collect();
        let (by_group, removals) = (&by_group, &removals);
        let results: Vec<Delivery> = stream::iter(deliveries)
            .map(|(connection, index, from)| async move {
                let all = by_group[index].1.as_slice();
                let removed_at = connection.user_id.and_then(|user| {
                    removals[index]
                        .iter()
                        .find(|(removed, at)| *removed == user && *at >= from)
                        .map(|(_, at)| *at)
                });
                let frames = &all[from.min(all.len())..removed_at.map_or(all.len(), |at| at + 1)];
                let mut delivery = if !connection.is_live(Utc::now()) {
                    Delivery::Expired
                } else {
                    tokio::time::timeout_at(deadline.into(), deliver(pusher, &connection, frames))
                        .await
                        .unwrap_or_else(|_| {
                            Delivery::CutOff(0, "the batch's fan-out budget ran out".into())
                        })
                };
                if let (Some(_), Delivery::Done(n)) = (removed_at, &delivery) {
                    delivery = if connection.all_groups {
                        Delivery::Left(*n)
                    } else {
                        Delivery::Ended(*n)
                    };
                }
                self.settle(pusher, &connection, &delivery).await;
                delivery
            })
            .buffer_unordered(PUSH_CONCURRENCY)
            .collect()
            .await;
        let mut out = FanOut::default();
        for delivery in results {
            match delivery {
                Delivery::Done(n) | Delivery::Ended(n) | Delivery::Left(n) => out.pushed += n,
                Delivery::Gone(n) => {
                    out.pushed += n;
                    out.gone += 1;
                }
                Delivery::CutOff(n, _) => {
                    out.pushed += n;
                    out.cut_off += 1;
                }
                Delivery::Expired => out.expired += 1,
            }
        }
        Ok(out)
    }

    /// Forgets a closed connection, cuts off one that could not take its frames, ends an
    /// all-groups socket's following of a group its user left. Best effort: a row left behind
    /// is found gone or cut off again on the next push, and expires anyway.
    async fn settle(&self, pusher: &dyn Pusher, connection: &Connection, delivery: &Delivery) {
        let id = &connection.connection_id;
        let tag = || chat_core::push::log_tag(id);
        if let Delivery::CutOff(_, why) = delivery {
            tracing::warn!(connection = %tag(), %why, "cutting off a connection that does not take its frames");
        }
        if matches!(delivery, Delivery::Expired) {
            tracing::info!(connection = %tag(), "closing a socket past its end (token expiry)");
        }
        if matches!(
            delivery,
            Delivery::CutOff(..) | Delivery::Ended(_) | Delivery::Expired
        ) {
            if let Err(e) = pusher.disconnect(id).await {
                tracing::warn!(connection = %tag(), error = %e, "could not close a connection");
            }
        }
        if matches!(
            delivery,
            Delivery::Gone(_) | Delivery::CutOff(..) | Delivery::Ended(_) | Delivery::Expired
        ) {
            if let Err(e) = self.store.delete_connection(id).await {
                tracing::warn!(connection = %tag(), error = %e, "could not forget a connection");
            }
        }
        // The subscription itself too: a closed socket's may outlive the socket's own item.
        if connection.all_groups && !matches!(delivery, Delivery::Done(_)) {
            if let Err(e) = self.store.delete_subscription(connection).await {
                tracing::warn!(connection = %tag(), error = %e, "could not end a subscription");
            }
        }
    }
}

/// The frames, in order, to one connection.
async fn deliver(pusher: &dyn Pusher, connection: &Connection, frames: &[Vec<u8>]) -> Delivery {
    let id = &connection.connection_id;
    let connect_window_ends =
        connection.connected_at + chrono::Duration::from_std(CONNECT_WINDOW).unwrap_or_default();
    for (sent, frame) in frames.iter().enumerate() {
        let mut failures = 0;
        loop {
            match pusher.push(id, frame).await {
                Ok(()) => break,
                Err(PushError::Gone) => {
                    let young = Utc::now() < connect_window_ends;
                    if !young {
                        return Delivery::Gone(sent);
                    }
                    tokio::time::sleep(PUSH_BACKOFF * 2).await;
                }
                Err(PushError::Unavailable(why)) => {
                    failures += 1;
                    if failures >= PUSH_ATTEMPTS {
                        return Delivery::CutOff(sent, why);
                    }
                    tokio::time::sleep(PUSH_BACKOFF * failures).await;
                }
            }
        }
    }
    Delivery::Done(frames.len())
}

//! Fan-out: each group's frames, in order, to each of its connections, connections
//! concurrently (bounded). A closed connection is forgotten.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use shared::domain::GroupId;
use shared::push::{Frame, PushError, Pusher};

use crate::{ProcessError, Processor};

/// Connections pushed to at once.
const PUSH_CONCURRENCY: usize = 32;

impl Processor {
    /// Pushes each group's frames, in order, to each of its connections; connections run
    /// concurrently (bounded). A closed connection is forgotten.
    pub(crate) async fn fan_out(
        &self,
        pusher: &dyn Pusher,
        frames: Vec<Frame>,
    ) -> Result<(usize, usize), ProcessError> {
        let mut by_group: Vec<(GroupId, Vec<Vec<u8>>)> = Vec::new();
        for frame in frames {
            let group = frame.group_id();
            match by_group.iter_mut().find(|(g, _)| *g == group) {
                Some((_, list)) => list.push(frame.to_json()),
                None => by_group.push((group, vec![frame.to_json()])),
            }
        }
        // (connection, index of its group's frames): owned items, so that the future stays
        // Send for the runtime (a borrowed item trips the compiler's higher-ranked check).
        let mut deliveries: Vec<(String, usize)> = Vec::new();
        for (index, (group, _)) in by_group.iter().enumerate() {
            for connection in self.store.connections_for_group(*group).await? {
                deliveries.push((connection.connection_id, index));
            }
        }
        let by_group = &by_group;
        let results: Vec<(usize, bool)> = stream::iter(deliveries)
            .map(|(connection_id, index)| async move {
                let mut pushed = 0;
                for frame in &by_group[index].1 {
                    match pusher.push(&connection_id, frame).await {
                        Ok(()) => pushed += 1,
                        Err(PushError::Gone) => {
                            self.store.delete_connection(&connection_id).await?;
                            return Ok::<_, ProcessError>((pushed, true));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok((pushed, false))
            })
            .buffer_unordered(PUSH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok((
            results.iter().map(|(pushed, _)| pushed).sum(),
            results.iter().filter(|(_, gone)| *gone).count(),
        ))
    }
}

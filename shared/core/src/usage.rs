//! What a function uses of the services AWS bills by use, recorded as metrics (through the
//! `metrics` facade: a function's recorder writes them as CloudWatch EMF lines; elsewhere they
//! go nowhere). `chat-bench cost` divides them by the messages sent to price one message.

/// Read capacity units of one DynamoDB call (one value per call), as DynamoDB reports them.
pub const DYNAMODB_READ_UNITS: &str = "dynamodb_read_units";
/// Write capacity units of one DynamoDB call (one value per call).
pub const DYNAMODB_WRITE_UNITS: &str = "dynamodb_write_units";
/// Bytes of the records produced to Kafka (key, value and headers).
pub const KAFKA_BYTES_PRODUCED: &str = "kafka_bytes_produced";
/// WebSocket messages sent through the Management API, as API Gateway bills them (one per
/// 32 KB of a frame).
pub const WEBSOCKET_MESSAGES: &str = "websocket_messages";

/// API Gateway bills WebSocket messages in increments of this size.
pub const WEBSOCKET_MESSAGE_BYTES: usize = 32 * 1024;

/// One DynamoDB call's consumed capacity: `write` for the calls that write.
pub fn dynamodb_units(write: bool, units: f64) {
    let name = if write {
        DYNAMODB_WRITE_UNITS
    } else {
        DYNAMODB_READ_UNITS
    };
    metrics::histogram!(name).record(units);
}

pub fn kafka_bytes(bytes: usize) {
    metrics::counter!(KAFKA_BYTES_PRODUCED).increment(bytes as u64);
}

/// A frame delivered to a socket.
pub fn websocket_frame(bytes: usize) {
    metrics::counter!(WEBSOCKET_MESSAGES).increment(websocket_messages(bytes));
}

/// The messages API Gateway bills for a frame of `bytes` (an empty one is still one).
pub fn websocket_messages(bytes: usize) -> u64 {
    bytes.div_ceil(WEBSOCKET_MESSAGE_BYTES).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_billed_per_started_32_kb() {
        for (bytes, messages) in [
            (0, 1),
            (1, 1),
            (32 * 1024, 1),
            (32 * 1024 + 1, 2),
            (100_000, 4),
        ] {
            assert_eq!(websocket_messages(bytes), messages, "{bytes} bytes");
        }
    }
}

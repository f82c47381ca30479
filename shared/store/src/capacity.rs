//! Every call asks DynamoDB for the capacity it consumed (`ReturnConsumedCapacity=TOTAL`,
//! free of charge) and records it ([`chat_core::usage::dynamodb_units`]): what a send, an edit
//! or a history page costs on demand is then measured, not guessed. One interceptor on the
//! client, so no call of the store can forget it.

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemError, DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemError, PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemError, UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub struct RecordCapacity;

/// Sets `return_consumed_capacity` on an input of any of the types named.
macro_rules! ask {
    ($input:expr, $($ty:ty),+) => {
        $(if let Some(input) = $input.downcast_mut::<$ty>() {
            input.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
            return;
        })+
    };
}

/// The capacity an output reports, with whether the call wrote.
macro_rules! reported {
    ($output:expr, $write:ident, single: $($one:ty),+; many: $($many:ty),+) => {{
        $(if let Some(output) = $output.downcast_ref::<$one>() {
            return total(output.consumed_capacity.iter(), $write::<$one>());
        })+
        $(if let Some(output) = $output.downcast_ref::<$many>() {
            return total(output.consumed_capacity.iter().flatten(), $write::<$many>());
        })+
        None
    }};
}

impl RecordCapacity {
    fn ask_for_capacity(context: &mut BeforeSerializationInterceptorContextMut<'_>) {
        let input = context.input_mut();
        ask!(
            input,
            GetItemInput,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            QueryInput,
            ScanInput,
            BatchGetItemInput,
            BatchWriteItemInput,
            TransactGetItemsInput,
            TransactWriteItemsInput
        );
    }

    /// `(write, units)` of the call's output, when it reports any. A conditional write whose
    /// condition failed reports nothing, yet DynamoDB bills it as a write: counted as one unit
    /// (our items are under 1 KB).
    fn consumed(context: &AfterDeserializationInterceptorContextRef<'_>) -> Option<(bool, f64)> {
        let output = match context.output_or_error() {
            Ok(output) => output,
            Err(e) => {
                let error = e.as_operation_error()?;
                let failed_condition = error
                    .downcast_ref::<PutItemError>()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception)
                    || error
                        .downcast_ref::<UpdateItemError>()
                        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
                    || error
                        .downcast_ref::<DeleteItemError>()
                        .is_some_and(DeleteItemError::is_conditional_check_failed_exception);
                return failed_condition.then_some((true, 1.0));
            }
        };
        reported!(output, writes,
            single: GetItemOutput, PutItemOutput, UpdateItemOutput, DeleteItemOutput,
                QueryOutput, ScanOutput;
            many: BatchGetItemOutput, BatchWriteItemOutput, TransactGetItemsOutput,
                TransactWriteItemsOutput)
    }
}

/// Whether an output type is a write's.
fn writes<T: 'static>() -> bool {
    use std::any::TypeId;
    [
        TypeId::of::<PutItemOutput>(),
        TypeId::of::<UpdateItemOutput>(),
        TypeId::of::<DeleteItemOutput>(),
        TypeId::of::<BatchWriteItemOutput>(),
        TypeId::of::<TransactWriteItemsOutput>(),
    ]
    .contains(&TypeId::of::<T>())
}

fn total<'a>(
    capacities: impl Iterator<Item = &'a ConsumedCapacity>,
    write: bool,
) -> Option<(bool, f64)> {
    let units: Vec<f64> = capacities.filter_map(|c| c.capacity_units).collect();
    (!units.is_empty()).then(|| (write, units.iter().sum()))
}

impl Intercept for RecordCapacity {
    fn name(&self) -> &'static str {
        "RecordCapacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Self::ask_for_capacity(context);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some((write, units)) = Self::consumed(context) {
            chat_core::usage::dynamodb_units(write, units);
        }
        Ok(())
    }
}

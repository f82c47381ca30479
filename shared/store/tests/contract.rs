//! The store's contract (`chat_testkit::contract::store`), against DynamoDB Local: each case on
//! tables of its own.

mod common;

chat_testkit::store_contract!(common::own_store());

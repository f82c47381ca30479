//! Memberships: one item per (group, user) in the members table, with the role, the read mark
//! and the log position (`version`) of the last change applied. A removal leaves the item
//! with `removed = true`, so that neither a replayed add nor set-up's seed brings a member back.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use crate::item::{get_bool, get_id, get_n, get_s, n, s, Item, GROUP};
use crate::{classify, DynamoStore, USER_INDEX};
use chat_core::domain::{Group, GroupId, Member, MessageId, Role, UserId};
use chat_core::store::{GroupCreator, MembershipWriter, StoreError};

fn member_from_item(item: &Item) -> Result<Option<Member>, StoreError> {
    if item.get("removed").is_some() && get_bool(item, "removed")? {
        return Ok(None);
    }
    let role = get_s(item, "role")?
        .parse::<Role>()
        .map_err(|e| StoreError::Corrupt(e.0))?;
    Ok(Some(Member {
        group_id: get_id(item, "group_id")?,
        user_id: get_id(item, "user_id")?,
        role,
        read_mark: match item.get("read_mark") {
            Some(_) => get_n(item, "read_mark")?,
            None => 0,
        },
    }))
}

fn member_item(member: &Member) -> Item {
    Item::from([
        ("group_id".to_owned(), n(member.group_id)),
        ("user_id".to_owned(), n(member.user_id)),
        ("role".to_owned(), s(member.role.as_str())),
        ("read_mark".to_owned(), n(member.read_mark)),
        ("version".to_owned(), n(0)),
        ("removed".to_owned(), AttributeValue::Bool(false)),
    ])
}

fn conditional_failure(code: Option<&str>) -> bool {
    code == Some("ConditionalCheckFailedException")
}

impl DynamoStore {
    pub(super) async fn get_membership(
        &self,
        group: GroupId,
        user: UserId,
    ) -> Result<Option<Member>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.members)
            .key("group_id", n(group))
            .key("user_id", n(user))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        Ok(out.item().map(member_from_item).transpose()?.flatten())
    }

    pub(super) async fn list_members(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.tables.members)
            .key_condition_expression("#g = :g")
            .expression_attribute_names("#g", "group_id")
            .expression_attribute_values(":g", n(group));
        let all = self.query_all("Query", request, member_from_item).await?;
        Ok(all.into_iter().flatten().collect())
    }

    pub(super) async fn list_memberships(&self, user: UserId) -> Result<Vec<Member>, StoreError> {
        let request = self
            .client
            .query()
            .table_name(&self.tables.members)
            .index_name(USER_INDEX)
            .key_condition_expression("#u = :u")
            .expression_attribute_names("#u", "user_id")
            .expression_attribute_values(":u", n(user));
        let mut all: Vec<Member> = self
            .query_all("Query", request, member_from_item)
            .await?
            .into_iter()
            .flatten()
            .collect();
        all.sort_by_key(|m| m.group_id);
        Ok(all)
    }

    pub(super) async fn put_seed_member(&self, member: &Member) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.members)
            .set_item(Some(member_item(member)))
            .condition_expression("attribute_not_exists(#g)")
            .expression_attribute_names("#g", "group_id")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if conditional_failure(e.code()) => Ok(()),
            Err(e) => Err(classify("PutItem", e)),
        }
    }
}

#[async_trait]
impl GroupCreator for DynamoStore {
    async fn create_group(&self, group: &Group, owner: UserId) -> Result<bool, StoreError> {
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed {
            op: "TransactWriteItems",
            cause: e.to_string(),
        };
        let group_put = Put::builder()
            .table_name(&self.tables.users)
            .item("kind", s(GROUP))
            .item("id", n(group.group_id))
            .item("name", s(&group.name))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "id")
            .build()
            .map_err(built)?;
        let owner_put = Put::builder()
            .table_name(&self.tables.members)
            .set_item(Some(member_item(&Member {
                group_id: group.group_id,
                user_id: owner,
                role: Role::Owner,
                read_mark: 0,
            })))
            .condition_expression("attribute_not_exists(#g)")
            .expression_attribute_names("#g", "group_id")
            .build()
            .map_err(built)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(group_put).build())
            .transact_items(TransactWriteItem::builder().put(owner_put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // The id is taken (by a group, or a membership left of one).
            Err(e) if e.code() == Some("TransactionCanceledException") => {
                let cancelled_by_condition = e
                    .as_service_error()
                    .and_then(|s| s.message())
                    .is_some_and(|m| m.contains("ConditionalCheckFailed"));
                if cancelled_by_condition {
                    Ok(false)
                } else {
                    Err(classify("TransactWriteItems", e))
                }
            }
            Err(e) => Err(classify("TransactWriteItems", e)),
        }
    }
}

#[async_trait]
impl MembershipWriter for DynamoStore {
    async fn apply_membership(
        &self,
        group: GroupId,
        user: UserId,
        role: Option<Role>,
        version: u64,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.members)
            .key("group_id", n(group))
            .key("user_id", n(user))
            .condition_expression("attribute_not_exists(#v) OR #v < :v")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#removed", "removed")
            .expression_attribute_values(":v", n(version));
        update = match role {
            Some(role) => update
                .update_expression("SET #v = :v, #removed = :false, #role = :role")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .expression_attribute_values(":role", s(role.as_str())),
            None => update
                .update_expression("SET #v = :v, #removed = :true")
                .expression_attribute_values(":true", AttributeValue::Bool(true)),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional_failure(e.code()) => Ok(false),
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }

    async fn mark_read(
        &self,
        group: GroupId,
        user: UserId,
        message_id: MessageId,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.members)
            .key("group_id", n(group))
            .key("user_id", n(user))
            .update_expression("SET #m = :m")
            .condition_expression(
                "attribute_exists(#role) AND #removed = :false AND (attribute_not_exists(#m) OR #m < :m)",
            )
            .expression_attribute_names("#m", "read_mark")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#removed", "removed")
            .expression_attribute_values(":m", n(message_id))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if conditional_failure(e.code()) => Ok(false),
            Err(e) => Err(classify("UpdateItem", e)),
        }
    }
}

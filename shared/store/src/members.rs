//! Memberships: one item per (group, user) in the members table, with the role, the read mark
//! and the log position (`version`) of the last change applied. A removal leaves the item
//! with `removed = true`, so that neither a replayed add nor set-up's seed brings a member back.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use crate::item::{get_bool, get_id, get_n, get_s, n, s, user_to_item, Item, GROUP};
use crate::{classify, DynamoStore, USER_INDEX};
use chat_core::domain::{Group, GroupId, Member, MessageId, Role, User, UserId};
use chat_core::store::{Accounts, GroupCreator, MembershipWriter, StoreError};

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

impl DynamoStore {
    /// A put of `item` into `table` unless an item with its key is there.
    fn put_new_item(
        &self,
        table: &str,
        item: Item,
        key_attribute: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", key_attribute)
            .build()
            .map_err(|e| StoreError::Failed {
                op: "TransactWriteItems",
                cause: e.to_string(),
            })?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A group and its owner's membership, as puts of new items.
    fn new_group_items(
        &self,
        group: &Group,
        owner: UserId,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let group_item = Item::from([
            ("kind".to_owned(), s(GROUP)),
            ("id".to_owned(), n(group.group_id)),
            ("name".to_owned(), s(&group.name)),
        ]);
        let owner_item = member_item(&Member {
            group_id: group.group_id,
            user_id: owner,
            role: Role::Owner,
            read_mark: 0,
        });
        Ok(vec![
            self.put_new_item(&self.tables.users, group_item, "id")?,
            self.put_new_item(&self.tables.members, owner_item, "group_id")?,
        ])
    }

    /// Writes `items` at once unless a condition fails: whether they were written.
    async fn write_new(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // A key is taken (cancelled by a condition, as the message's reasons say).
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
impl GroupCreator for DynamoStore {
    async fn create_group(&self, group: &Group, owner: UserId) -> Result<bool, StoreError> {
        self.write_new(self.new_group_items(group, owner)?).await
    }
}

/// The directory item that maps an account to its chat user: kind `account:<account>`, id 0.
fn account_kind(account: &str) -> String {
    format!("account:{account}")
}

#[async_trait]
impl Accounts for DynamoStore {
    async fn account_user(&self, account: &str) -> Result<Option<UserId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("kind", s(account_kind(account)))
            .key("id", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item().map(|item| get_id(item, "user_id")).transpose()
    }

    async fn sign_up(
        &self,
        account: &str,
        user: &User,
        first_group: &Group,
    ) -> Result<Option<UserId>, StoreError> {
        if let Some(existing) = self.account_user(account).await? {
            return Ok(Some(existing));
        }
        let mapping = Item::from([
            ("kind".to_owned(), s(account_kind(account))),
            ("id".to_owned(), n(0)),
            ("user_id".to_owned(), n(user.user_id)),
        ]);
        let mut items = vec![
            self.put_new_item(&self.tables.users, mapping, "id")?,
            self.put_new_item(&self.tables.users, user_to_item(user), "id")?,
        ];
        items.extend(self.new_group_items(first_group, user.user_id)?);
        if self.write_new(items).await? {
            return Ok(Some(user.user_id));
        }
        // Signed up meanwhile (a retried trigger), or an id is taken.
        self.account_user(account).await
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

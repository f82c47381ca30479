//! Users and groups: one table, items told apart by `kind`.

use async_trait::async_trait;

use crate::item::{get_id, get_s, n, s, user_from_item, user_to_item, GROUP, USER};
use crate::{classify, DynamoStore};
use chat_core::domain::{Group, GroupId, Member, User, UserId};
use chat_core::store::{Directory, DirectoryWriter, StoreError};

impl DynamoStore {
    /// The Query of every directory item of `kind`, in id order.
    fn of_kind(
        &self,
        kind: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.users)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", "kind")
            .expression_attribute_values(":k", s(kind))
    }
}

#[async_trait]
impl Directory for DynamoStore {
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("kind", s(USER))
            .key("id", n(id))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item().map(user_from_item).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.query_all("Query", self.of_kind(USER), user_from_item)
            .await
    }

    async fn get_group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.users)
            .key("kind", s(GROUP))
            .key("id", n(id))
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        out.item()
            .map(|item| {
                Ok(Group {
                    group_id: get_id(item, "id")?,
                    name: get_s(item, "name")?.to_owned(),
                })
            })
            .transpose()
    }

    async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        self.query_all("Query", self.of_kind(GROUP), |item| {
            Ok(Group {
                group_id: get_id(item, "id")?,
                name: get_s(item, "name")?.to_owned(),
            })
        })
        .await
    }

    async fn membership(&self, group: GroupId, user: UserId) -> Result<Option<Member>, StoreError> {
        self.get_membership(group, user).await
    }

    async fn members_of(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        self.list_members(group).await
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<Member>, StoreError> {
        self.list_memberships(user).await
    }
}

#[async_trait]
impl DirectoryWriter for DynamoStore {
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.users)
            .set_item(Some(user_to_item(user)))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.users)
            .item("kind", s(GROUP))
            .item("id", n(group.group_id))
            .item("name", s(&group.name))
            .send()
            .await
            .map_err(|e| classify("PutItem", e))?;
        Ok(())
    }

    async fn seed_member(&self, member: &Member) -> Result<(), StoreError> {
        self.put_seed_member(member).await
    }
}

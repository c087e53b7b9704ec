//! The controller's only way to ECS: a trait of domain verbs (an image, the image carrying a tag, a
//! task, import, cancel, delete, update), so its tests can script ECS answers, with the real client
//! as the production implementation. Requests and ECS codes live in `src/ecs/` (`ecs::verbs`).

use std::future::Future;

use crate::ecs::api::{
    CopyImageRequest, Image, ImportImageRequest, ImportImageResponse, Tag, TaskAttribute,
    TaskSummary,
};
use crate::ecs::{CancelOutcome, CredentialProvider, DeleteOutcome, EcsClient, EcsError};

/// What the controller asks of ECS, and changes there.
pub trait EcsPort: Send + Sync + 'static {
    /// `ImportImage` (retried with one `ClientToken`).
    fn import(
        &self,
        credentials: &CredentialProvider,
        request: &ImportImageRequest,
    ) -> impl Future<Output = Result<ImportImageResponse, EcsError>> + Send;
    /// The images among `ids` (at most 100), in any status.
    fn images(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Image>, EcsError>> + Send;
    /// The account's own image carrying tag `key` = `value`.
    fn image_tagged(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Option<Image>, EcsError>> + Send;
    /// The `ImportImage` task that made `image_id`.
    fn import_task_of(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> impl Future<Output = Result<Option<TaskSummary>, EcsError>> + Send;
    /// A task as `DescribeTasks` lists it.
    fn task(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<TaskSummary>, EcsError>> + Send;
    /// A task with its progress and its error.
    fn task_detail(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<TaskAttribute>, EcsError>> + Send;
    /// Cancels a task.
    fn cancel(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<CancelOutcome, EcsError>> + Send;
    /// Deletes an image (never forced).
    fn delete(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> impl Future<Output = Result<DeleteOutcome, EcsError>> + Send;
    /// Sets an image's name and/or description.
    fn update_attributes(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// Adds or overwrites tags on an image.
    fn tag(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        tags: &[Tag],
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// Removes tag keys from an image.
    fn untag(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// The account the credentials belong to (STS `GetCallerIdentity`).
    fn account_id(
        &self,
        credentials: &CredentialProvider,
    ) -> impl Future<Output = Result<String, EcsError>> + Send;
    /// `CopyImage`; returns the copy's ID in the destination region.
    fn copy_image(
        &self,
        credentials: &CredentialProvider,
        request: &CopyImageRequest,
    ) -> impl Future<Output = Result<String, EcsError>> + Send;
    /// Cancels a running copy (which deletes it).
    fn cancel_copy(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> impl Future<Output = Result<CancelOutcome, EcsError>> + Send;
    /// Shares an image with `add` and unshares it from `remove`.
    fn share(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// The accounts an image is shared with; `None` when ECS does not know the image.
    fn shared_with(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, EcsError>> + Send;
}

impl EcsPort for EcsClient {
    async fn import(
        &self,
        credentials: &CredentialProvider,
        request: &ImportImageRequest,
    ) -> Result<ImportImageResponse, EcsError> {
        EcsClient::import_image(self, credentials, request).await
    }

    async fn images(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<Image>, EcsError> {
        EcsClient::images(self, credentials, region, ids).await
    }

    async fn image_tagged(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        key: &str,
        value: &str,
    ) -> Result<Option<Image>, EcsError> {
        EcsClient::image_tagged(self, credentials, region, key, value).await
    }

    async fn import_task_of(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<Option<TaskSummary>, EcsError> {
        EcsClient::import_task_of(self, credentials, region, image_id).await
    }

    async fn task(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> Result<Option<TaskSummary>, EcsError> {
        EcsClient::task(self, credentials, region, task_id).await
    }

    async fn task_detail(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> Result<Option<TaskAttribute>, EcsError> {
        EcsClient::task_detail(self, credentials, region, task_id).await
    }

    async fn cancel(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> Result<CancelOutcome, EcsError> {
        EcsClient::cancel(self, credentials, region, task_id).await
    }

    async fn delete(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<DeleteOutcome, EcsError> {
        EcsClient::delete(self, credentials, region, image_id).await
    }

    async fn update_attributes(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), EcsError> {
        EcsClient::update_attributes(self, credentials, region, image_id, name, description).await
    }

    async fn tag(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        tags: &[Tag],
    ) -> Result<(), EcsError> {
        EcsClient::tag(self, credentials, region, image_id, tags).await
    }

    async fn untag(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        keys: &[String],
    ) -> Result<(), EcsError> {
        EcsClient::untag(self, credentials, region, image_id, keys).await
    }

    async fn account_id(&self, credentials: &CredentialProvider) -> Result<String, EcsError> {
        self.caller_identity(credentials)
            .await
            .map(|identity| identity.account_id)
    }

    async fn copy_image(
        &self,
        credentials: &CredentialProvider,
        request: &CopyImageRequest,
    ) -> Result<String, EcsError> {
        EcsClient::copy_image(self, credentials, request).await
    }

    async fn cancel_copy(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<CancelOutcome, EcsError> {
        EcsClient::cancel_copy(self, credentials, region, image_id).await
    }

    async fn share(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), EcsError> {
        EcsClient::share(self, credentials, region, image_id, add, remove).await
    }

    async fn shared_with(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<Option<Vec<String>>, EcsError> {
        EcsClient::shared_with(self, credentials, region, image_id).await
    }
}

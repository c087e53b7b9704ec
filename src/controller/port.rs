//! The controller's only way to ECS: a small trait, so its tests can script ECS answers, with the
//! real client as the production implementation.

use std::future::Future;

use crate::ecs::api::{
    CancelTaskRequest, DeleteImageRequest, DescribeImagesRequest, DescribeImagesResponse,
    DescribeTaskAttributeRequest, DescribeTasksRequest, DescribeTasksResponse, ImportImageRequest,
    ImportImageResponse, ModifyImageAttributeRequest, TagResourcesRequest, TaskAttribute,
    UntagResourcesRequest,
};
use crate::ecs::{CancelOutcome, CredentialProvider, DeleteOutcome, EcsClient, EcsError};

/// The ECS calls the controller makes.
pub trait EcsPort: Send + Sync + 'static {
    /// `ImportImage`.
    fn import_image(
        &self,
        credentials: &CredentialProvider,
        request: &ImportImageRequest,
    ) -> impl Future<Output = Result<ImportImageResponse, EcsError>> + Send;
    /// `DescribeImages`.
    fn describe_images(
        &self,
        credentials: &CredentialProvider,
        request: &DescribeImagesRequest,
    ) -> impl Future<Output = Result<DescribeImagesResponse, EcsError>> + Send;
    /// `DescribeTasks`.
    fn describe_tasks(
        &self,
        credentials: &CredentialProvider,
        request: &DescribeTasksRequest,
    ) -> impl Future<Output = Result<DescribeTasksResponse, EcsError>> + Send;
    /// `DescribeTaskAttribute`.
    fn describe_task_attribute(
        &self,
        credentials: &CredentialProvider,
        request: &DescribeTaskAttributeRequest,
    ) -> impl Future<Output = Result<TaskAttribute, EcsError>> + Send;
    /// `CancelTask`.
    fn cancel_task(
        &self,
        credentials: &CredentialProvider,
        request: &CancelTaskRequest,
    ) -> impl Future<Output = Result<CancelOutcome, EcsError>> + Send;
    /// `DeleteImage`.
    fn delete_image(
        &self,
        credentials: &CredentialProvider,
        request: &DeleteImageRequest,
    ) -> impl Future<Output = Result<DeleteOutcome, EcsError>> + Send;
    /// `ModifyImageAttribute`.
    fn modify_image_attribute(
        &self,
        credentials: &CredentialProvider,
        request: &ModifyImageAttributeRequest,
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// `TagResources`.
    fn tag_resources(
        &self,
        credentials: &CredentialProvider,
        request: &TagResourcesRequest,
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// `UntagResources`.
    fn untag_resources(
        &self,
        credentials: &CredentialProvider,
        request: &UntagResourcesRequest,
    ) -> impl Future<Output = Result<(), EcsError>> + Send;
    /// The account the credentials belong to (STS `GetCallerIdentity`).
    fn account_id(
        &self,
        credentials: &CredentialProvider,
    ) -> impl Future<Output = Result<String, EcsError>> + Send;
}

impl EcsPort for EcsClient {
    async fn import_image(
        &self,
        credentials: &CredentialProvider,
        request: &ImportImageRequest,
    ) -> Result<ImportImageResponse, EcsError> {
        EcsClient::import_image(self, credentials, request).await
    }

    async fn describe_images(
        &self,
        credentials: &CredentialProvider,
        request: &DescribeImagesRequest,
    ) -> Result<DescribeImagesResponse, EcsError> {
        self.call(credentials, request).await
    }

    async fn describe_tasks(
        &self,
        credentials: &CredentialProvider,
        request: &DescribeTasksRequest,
    ) -> Result<DescribeTasksResponse, EcsError> {
        self.call(credentials, request).await
    }

    async fn describe_task_attribute(
        &self,
        credentials: &CredentialProvider,
        request: &DescribeTaskAttributeRequest,
    ) -> Result<TaskAttribute, EcsError> {
        self.call(credentials, request).await
    }

    async fn cancel_task(
        &self,
        credentials: &CredentialProvider,
        request: &CancelTaskRequest,
    ) -> Result<CancelOutcome, EcsError> {
        EcsClient::cancel_task(self, credentials, request).await
    }

    async fn delete_image(
        &self,
        credentials: &CredentialProvider,
        request: &DeleteImageRequest,
    ) -> Result<DeleteOutcome, EcsError> {
        EcsClient::delete_image(self, credentials, request).await
    }

    async fn modify_image_attribute(
        &self,
        credentials: &CredentialProvider,
        request: &ModifyImageAttributeRequest,
    ) -> Result<(), EcsError> {
        self.call(credentials, request).await.map(|_| ())
    }

    async fn tag_resources(
        &self,
        credentials: &CredentialProvider,
        request: &TagResourcesRequest,
    ) -> Result<(), EcsError> {
        self.call(credentials, request).await.map(|_| ())
    }

    async fn untag_resources(
        &self,
        credentials: &CredentialProvider,
        request: &UntagResourcesRequest,
    ) -> Result<(), EcsError> {
        self.call(credentials, request).await.map(|_| ())
    }

    async fn account_id(&self, credentials: &CredentialProvider) -> Result<String, EcsError> {
        self.caller_identity(credentials)
            .await
            .map(|identity| identity.account_id)
    }
}

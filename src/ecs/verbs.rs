//! The operator's questions and changes in its own words — an image by id, the image carrying a
//! tag, an import's task, cancel, delete, update, copy, share — each built into its ECS request here, so the
//! controller never spells a `DescribeImages` request or matches an ECS code. What ECS answers
//! "not found" to is `None` (or a `…Outcome`), not an error.

use super::api::{
    ALL_IMAGE_STATUSES, CancelCopyImageRequest, CancelTaskRequest, CopyImageRequest,
    DeleteImageRequest, DescribeImageSharePermissionRequest, DescribeImagesRequest,
    DescribeTaskAttributeRequest, DescribeTasksRequest, Image, MAX_IDS_PER_CALL,
    MAX_SHARE_ACCOUNTS_PER_CALL, ModifyImageAttributeRequest, ModifyImageSharePermissionRequest,
    RESOURCE_TYPE_IMAGE, Tag, TagFilter, TagResourcesRequest, TaskAttribute, TaskSummary,
    UntagResourcesRequest,
};
use super::client::{CancelOutcome, DeleteOutcome, EcsClient, random_hex};
use super::credentials::CredentialProvider;
use super::error::EcsError;

/// Every status an image can be in: images being imported are `Creating` or `Waiting`, which
/// `DescribeImages` leaves out unless asked.
fn all_statuses() -> Vec<String> {
    ALL_IMAGE_STATUSES.split(',').map(String::from).collect()
}

impl EcsClient {
    /// The images among `ids` (at most [`MAX_IDS_PER_CALL`]), in any status; an id ECS does not
    /// know is simply absent.
    pub async fn images(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<Image>, EcsError> {
        let request = DescribeImagesRequest {
            region_id: region.to_string(),
            image_ids: ids.to_vec(),
            statuses: all_statuses(),
            page_size: Some(MAX_IDS_PER_CALL as u32),
            ..Default::default()
        };
        let response = self.call(credentials, &request).await?;
        Ok(response
            .images
            .into_iter()
            .filter(|image| ids.contains(&image.image_id))
            .collect())
    }

    /// The account's own image carrying tag `key` = `value`, in any status.
    pub async fn image_tagged(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        key: &str,
        value: &str,
    ) -> Result<Option<Image>, EcsError> {
        let request = DescribeImagesRequest {
            region_id: region.to_string(),
            image_owner_alias: Some("self".into()),
            statuses: all_statuses(),
            tags: vec![TagFilter {
                key: key.to_string(),
                value: Some(value.to_string()),
            }],
            ..Default::default()
        };
        let response = self.call(credentials, &request).await?;
        Ok(response
            .images
            .into_iter()
            .find(|image| image.tag(key) == Some(value)))
    }

    /// The `ImportImage` task that made image `image_id`, if ECS still lists it.
    pub async fn import_task_of(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<Option<TaskSummary>, EcsError> {
        let request = DescribeTasksRequest {
            region_id: region.to_string(),
            task_action: Some("ImportImage".into()),
            resource_ids: vec![image_id.to_string()],
            page_size: Some(10),
            ..Default::default()
        };
        let response = self.call(credentials, &request).await?;
        Ok(response
            .tasks
            .into_iter()
            .find(|task| task.resource_id == image_id))
    }

    /// Task `task_id` as `DescribeTasks` lists it, if ECS knows it.
    pub async fn task(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> Result<Option<TaskSummary>, EcsError> {
        let request = DescribeTasksRequest {
            region_id: region.to_string(),
            task_ids: vec![task_id.to_string()],
            ..Default::default()
        };
        let response = self.call(credentials, &request).await?;
        Ok(response
            .tasks
            .into_iter()
            .find(|task| task.task_id == task_id))
    }

    /// Task `task_id` with its progress and the error of a failed task, if ECS knows it.
    pub async fn task_detail(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> Result<Option<TaskAttribute>, EcsError> {
        let request = DescribeTaskAttributeRequest {
            region_id: region.to_string(),
            task_id: task_id.to_string(),
        };
        match self.call(credentials, &request).await {
            Ok(task) => Ok(Some(task)),
            Err(error) if error.is_unknown_task() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Cancels task `task_id` ("already stopped" and "no such task" are outcomes).
    pub async fn cancel(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        task_id: &str,
    ) -> Result<CancelOutcome, EcsError> {
        let request = CancelTaskRequest {
            region_id: region.to_string(),
            task_id: task_id.to_string(),
        };
        self.cancel_task(credentials, &request).await
    }

    /// Deletes image `image_id` (a missing image counts as deleted); never forced, so ECS refuses
    /// while instances use it.
    pub async fn delete(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<DeleteOutcome, EcsError> {
        let request = DeleteImageRequest {
            region_id: region.to_string(),
            image_id: image_id.to_string(),
            force: false,
        };
        self.delete_image(credentials, &request).await
    }

    /// Sets the name and/or description of image `image_id`.
    pub async fn update_attributes(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), EcsError> {
        let request = ModifyImageAttributeRequest {
            region_id: region.to_string(),
            image_id: image_id.to_string(),
            image_name: name.map(String::from),
            description: description.map(String::from),
        };
        self.call(credentials, &request).await.map(|_| ())
    }

    /// Adds or overwrites `tags` on image `image_id`.
    pub async fn tag(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        tags: &[Tag],
    ) -> Result<(), EcsError> {
        let request = TagResourcesRequest {
            region_id: region.to_string(),
            resource_type: RESOURCE_TYPE_IMAGE.into(),
            resource_ids: vec![image_id.to_string()],
            tags: tags.to_vec(),
        };
        self.call(credentials, &request).await.map(|_| ())
    }

    /// Removes the tag keys `keys` from image `image_id`.
    pub async fn untag(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        keys: &[String],
    ) -> Result<(), EcsError> {
        let request = UntagResourcesRequest {
            region_id: region.to_string(),
            resource_type: RESOURCE_TYPE_IMAGE.into(),
            resource_ids: vec![image_id.to_string()],
            tag_keys: keys.to_vec(),
            all: false,
        };
        self.call(credentials, &request).await.map(|_| ())
    }

    /// Copies an image into another region and returns the copy's id. Without a `ClientToken`
    /// one is generated, so the client's own retries of this call never make a second copy;
    /// give one (derived from what the copy is for) to make a retry after a crash safe as well.
    pub async fn copy_image(
        &self,
        credentials: &CredentialProvider,
        request: &CopyImageRequest,
    ) -> Result<String, EcsError> {
        let mut request = request.clone();
        if request.client_token.is_none() {
            request.client_token = Some(random_hex(32));
        }
        Ok(self.call(credentials, &request).await?.image_id)
    }

    /// Cancels the running copy `image_id` in its (destination) region, which deletes it. A copy
    /// already done (`IncorrectImageStatus`) is [`CancelOutcome::AlreadyStopped`], an unknown
    /// image [`CancelOutcome::NotFound`].
    pub async fn cancel_copy(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<CancelOutcome, EcsError> {
        let request = CancelCopyImageRequest {
            region_id: region.to_string(),
            image_id: image_id.to_string(),
        };
        match self.call(credentials, &request).await {
            Ok(_) => Ok(CancelOutcome::Cancelled),
            Err(EcsError::Api(error)) if error.code == "IncorrectImageStatus" => {
                Ok(CancelOutcome::AlreadyStopped)
            }
            Err(EcsError::Api(error)) if error.code == "InvalidImageId.NotFound" => {
                Ok(CancelOutcome::NotFound)
            }
            Err(error) => Err(error),
        }
    }

    /// Shares image `image_id` with the accounts `add` and unshares it from `remove`, in as few
    /// calls as ECS allows ([`MAX_SHARE_ACCOUNTS_PER_CALL`] of each per call); nothing to change
    /// makes no call. An error stops at the call it happened in: the calls before it took effect.
    pub async fn share(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), EcsError> {
        let mut adds = add.chunks(MAX_SHARE_ACCOUNTS_PER_CALL);
        let mut removes = remove.chunks(MAX_SHARE_ACCOUNTS_PER_CALL);
        loop {
            let (add, remove) = (adds.next(), removes.next());
            if add.is_none() && remove.is_none() {
                return Ok(());
            }
            let request = ModifyImageSharePermissionRequest {
                region_id: region.to_string(),
                image_id: image_id.to_string(),
                add_accounts: add.unwrap_or_default().to_vec(),
                remove_accounts: remove.unwrap_or_default().to_vec(),
            };
            self.call(credentials, &request).await?;
        }
    }

    /// Every account image `image_id` is shared with, following the pages; `None` when ECS does
    /// not know the image.
    pub async fn shared_with(
        &self,
        credentials: &CredentialProvider,
        region: &str,
        image_id: &str,
    ) -> Result<Option<Vec<String>>, EcsError> {
        let mut accounts = Vec::new();
        for page_number in 1u32.. {
            let request = DescribeImageSharePermissionRequest {
                region_id: region.to_string(),
                image_id: image_id.to_string(),
                page_number: Some(page_number),
                page_size: Some(MAX_IDS_PER_CALL as u32),
            };
            let page = match self.call(credentials, &request).await {
                Ok(page) => page,
                Err(EcsError::Api(error)) if error.code == "InvalidImageId.NotFound" => {
                    return Ok(None);
                }
                Err(error) => return Err(error),
            };
            let empty = page.accounts.is_empty();
            accounts.extend(page.accounts.into_iter().map(|account| account.aliyun_id));
            // An empty page ends it too, so an answer that overstates its total cannot loop.
            if empty || accounts.len() as u64 >= page.total_count {
                break;
            }
        }
        Ok(Some(accounts))
    }
}

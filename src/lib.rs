//! ecs-image-operator: a Kubernetes operator that imports disk images from OSS into Alibaba Cloud ECS.
//!
//! Layers (see the design contract): [`api`] is the `ImageImport` resource; [`ecs`] is the ECS side (wire codec, signing, credentials,
//! typed API, client); it knows nothing of Kubernetes. [`cli`] is the command line of the binary.

pub mod api;
pub mod cli;
pub mod controller;
pub mod ecs;
pub mod run;

//! ecs-image-operator: a Kubernetes operator that imports disk images from OSS into Alibaba Cloud ECS.
//!
//! Layers (see the design contract): [`api`] is the `ImageImport` resource and [`admission`] judges
//! one as kube-apiserver would; [`ecs`] is the ECS side (wire codec, signing, credentials, typed
//! API, client), which knows nothing of Kubernetes; [`controller`] decides and reconciles;
//! [`emulator`] is an offline ECS endpoint for tests and demos, sharing only the wire codec and
//! signing with [`ecs`]; [`cli`], [`run`] and [`import`] are the binary's commands; [`metrics`] is
//! what `run` exports to Prometheus; [`explain`] says an error and its causes once each; [`upload`]
//! streams a source file into OSS for an import.

pub mod admission;
pub mod api;
pub mod cli;
pub mod controller;
pub mod ecs;
pub mod emulator;
pub mod explain;
pub mod import;
pub mod metrics;
pub mod run;
pub mod upload;

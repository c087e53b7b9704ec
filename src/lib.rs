//! ecs-image-operator: a Kubernetes operator that imports disk images from OSS into Alibaba Cloud ECS.
//!
//! Layers (see the design contract): [`ecs`] is the ECS side (wire codec, signing, credentials,
//! typed API, client); it knows nothing of Kubernetes. [`emulator`] is an offline ECS endpoint for
//! tests and demos, sharing only the wire codec and signing with [`ecs`]. [`cli`] is the command line
//! of the binary.

pub mod cli;
pub mod ecs;
pub mod emulator;

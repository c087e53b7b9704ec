//! The operator's controller. [`decision`] is the pure heart: what to do for one resource given
//! what ECS reports; the runtime around it (watching, polling ECS in batches, writing status) is
//! built on top of it.

pub mod decision;

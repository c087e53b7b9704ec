//! The `ecs-image-operator` binary.
fn main() {}

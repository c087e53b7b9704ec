//! STS `GetCallerIdentity` (version 2015-04-01), served beside ECS so one emulator answers the
//! operator's account look-ups.

use super::Fields;
use crate::emulator::render::Node;

/// The emulator's account names stand in for Alibaba Cloud's numeric account ids.
pub(super) fn caller_identity(account: &str) -> Fields {
    vec![
        ("AccountId", Node::s(account)),
        ("UserId", Node::s(format!("{account}-user"))),
        ("Arn", Node::s(format!("acs:ram::{account}:user/emulator"))),
        ("IdentityType", Node::s("RAMUser")),
        ("PrincipalId", Node::s(format!("{account}-user"))),
    ]
}

//! Shares: `ModifyImageSharePermission` (`AddAccount.N`, `RemoveAccount.N`) and
//! `DescribeImageSharePermission` (the accounts, by page).

use jiff::Timestamp;

use super::{EcsFault, Fields, ecs_time, flag, numbered, page, region_and};
use crate::ecs::api::MAX_SHARE_ACCOUNTS_PER_CALL;
use crate::ecs::params::Params;
use crate::emulator::render::Node;
use crate::emulator::world::World;

/// `AddAccount.N` or `RemoveAccount.N` for N = 1..10; ECS ignores greater N, and so does this.
fn accounts<'a>(params: &'a Params, prefix: &str) -> Vec<&'a str> {
    numbered(params, prefix, None)
        .into_iter()
        .filter(|(n, account)| (1..=MAX_SHARE_ACCOUNTS_PER_CALL).contains(n) && !account.is_empty())
        .map(|(_, account)| account)
        .collect()
}

pub(super) fn modify_image_share_permission(
    world: &mut World,
    account: &str,
    params: &Params,
    now: Timestamp,
) -> Result<Fields, EcsFault> {
    let (region, image_id) = region_and(world, params, "ImageId")?;
    if flag(params, "IsPublic")? {
        return Err(EcsFault::new(
            "InvalidParameter",
            "The specified parameter \"IsPublic\" is not valid: community images are not emulated.",
        ));
    }
    let add = accounts(params, "AddAccount");
    let remove = accounts(params, "RemoveAccount");
    world.modify_shares(account, &region, image_id, &add, &remove, now)?;
    Ok(Vec::new())
}

pub(super) fn describe_image_share_permission(
    world: &mut World,
    account: &str,
    params: &Params,
    _now: Timestamp,
) -> Result<Fields, EcsFault> {
    let (region, image_id) = region_and(world, params, "ImageId")?;
    let (page_number, page_size) = page(params)?;
    let shares = world.shares(account, &region, image_id)?;
    let accounts = shares
        .iter()
        // Saturating: a page number near `usize::MAX` is simply past the end.
        .skip((page_number - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|share| {
            Node::Obj(vec![
                ("AliyunId", Node::s(&share.account)),
                ("SharedTime", Node::s(ecs_time(share.at))),
            ])
        })
        .collect();
    Ok(vec![
        ("RegionId", Node::s(&region)),
        ("ImageId", Node::s(image_id)),
        ("TotalCount", Node::i(shares.len())),
        ("PageNumber", Node::i(page_number)),
        ("PageSize", Node::i(page_size)),
        // Sharing with groups (`all` for community images) is not emulated.
        ("ShareGroups", Node::Set("ShareGroup", Vec::new())),
        ("Accounts", Node::Set("Account", accounts)),
    ])
}

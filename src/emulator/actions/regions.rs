//! `DescribeRegions`: the world's regions.

use super::{EcsFault, Fields, optional};
use crate::ecs::params::Params;
use crate::emulator::render::Node;
use crate::emulator::world::World;

pub(super) fn describe_regions(world: &mut World, params: &Params) -> Result<Fields, EcsFault> {
    if let Some(region) = optional(params, "RegionId")
        && world.region(region).is_none()
    {
        return Err(EcsFault::invalid_region());
    }
    let regions = world
        .regions()
        .iter()
        .map(|region| {
            Node::Obj(vec![
                ("RegionId", Node::s(&region.id)),
                ("LocalName", Node::s(&region.local_name)),
                (
                    "RegionEndpoint",
                    Node::s(format!("ecs.{}.aliyuncs.com", region.id)),
                ),
                ("Status", Node::s("available")),
            ])
        })
        .collect();
    Ok(vec![("Regions", Node::Set("Region", regions))])
}

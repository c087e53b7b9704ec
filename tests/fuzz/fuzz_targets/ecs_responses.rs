//! Any bytes as an ECS answer: every typed response, the error body (JSON or XML) and the header
//! readers return a value or an error, never panic; the parameter codec round-trips.
#![no_main]

use ecs_image_operator::ecs::api::{
    self, Acknowledged, DescribeImagesResponse, DescribeRegionsResponse, DescribeTasksResponse,
    ImportImageResponse, TaskAttribute,
};
use ecs_image_operator::ecs::error::{ApiError, parse_retry_after};
use ecs_image_operator::ecs::params::{Params, form_decode, percent_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    let _ = serde_json::from_str::<ImportImageResponse>(&body);
    let _ = serde_json::from_str::<DescribeTasksResponse>(&body);
    let _ = serde_json::from_str::<TaskAttribute>(&body);
    let _ = serde_json::from_str::<DescribeImagesResponse>(&body);
    let _ = serde_json::from_str::<DescribeRegionsResponse>(&body);
    let _ = serde_json::from_str::<Acknowledged>(&body);
    if let Some(error) = ApiError::parse("ImportImage", 400, &body) {
        assert!(!error.code.is_empty());
        let _ = (error.class(), error.to_string());
    }
    let _ = parse_retry_after(&body);
    let _ = api::parse_percent(&body);
    let _ = api::parse_ecs_time(&body);
    assert_eq!(form_decode(&percent_encode(&body)).as_deref(), Ok(&*body));
    if let Ok(params) = Params::from_form(&body) {
        assert_eq!(Params::from_form(&params.to_form()), Ok(params));
    }
});

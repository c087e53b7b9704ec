//! The chart's CRD: one source (the generated `crds/` file, copied verbatim into the chart), a
//! template rather than Helm's `crds/` folder so that `helm upgrade` applies a changed schema,
//! kept on uninstall, and left alone by Argo CD (never pruned, never deleted with the Application,
//! synced before everything else). `tests/envtest_helm.rs` does the same install, upgrade and
//! uninstall with real Helm against kube-apiserver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;

use chart_support::{
    CHART_CRD, FIELD_ADDED_SINCE, GENERATED_CRD, chart_dir, kind, name, of_kind, one,
    parse_documents, previous_chart, repo, spec_properties, sync_options, sync_wave, template,
    template_chart,
};
use serde_json::Value;

const CRD_NAME: &str = "imageimports.ecs.image-import.dev";

fn rendered_crd(objects: &[Value]) -> &Value {
    let crd = one(objects, "CustomResourceDefinition");
    assert_eq!(name(crd), CRD_NAME);
    crd
}

#[test]
fn the_chart_crd_is_the_generated_one() {
    let generated = std::fs::read(repo().join(GENERATED_CRD)).unwrap();
    let in_chart = std::fs::read(chart_dir().join(CHART_CRD)).unwrap();
    assert!(
        generated == in_chart,
        "charts/ecs-image-operator/{CHART_CRD} drifted: run \
         `cp {GENERATED_CRD} charts/ecs-image-operator/{CHART_CRD}`"
    );
    let listed: Vec<_> = std::fs::read_dir(chart_dir().join("files/crds"))
        .unwrap()
        .collect();
    assert_eq!(
        listed.len(),
        1,
        "files/crds/ holds only the ImageImport CRD"
    );
    // Helm's crds/ folder is installed once and never upgraded: the CRD must not be there.
    assert!(
        !chart_dir().join("crds").exists(),
        "the chart has a crds/ folder again: Helm would never upgrade what is in it"
    );

    // What the template renders is the generated CRD, metadata aside.
    let generated: Value = serde_saphyr::from_str(&String::from_utf8(generated).unwrap()).unwrap();
    let objects = parse_documents(&template(&[], &[]).unwrap());
    let crd = rendered_crd(&objects);
    assert_eq!(crd["apiVersion"], generated["apiVersion"]);
    assert_eq!(name(crd), generated["metadata"]["name"]);
    if let Some(path) = first_difference(&crd["spec"], &generated["spec"], "spec") {
        panic!("the rendered CRD differs from {GENERATED_CRD} at {path}");
    }
}

/// The path of the first place where two JSON values differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        // Helm's fromYaml reads every number as a float: 2048.0 and 2048 are the same JSON number.
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64() != y.as_f64()).then(|| format!("{path}: {a} vs {b}"))
        }
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn the_crd_is_part_of_the_release_so_an_upgrade_applies_it() {
    // `helm template` without --include-crds prints what install and upgrade apply as the
    // release's manifest; a CRD in crds/ would be missing from it.
    let objects = parse_documents(&template(&[], &[]).unwrap());
    let crd = rendered_crd(&objects);
    assert_eq!(
        crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );

    // The previous release's chart lacks a field; the upgrade's manifest has it.
    let dir = tempfile::tempdir().unwrap();
    let previous = dir.path().join("previous");
    previous_chart(&previous);
    let old = parse_documents(&template_chart(&previous, &[]).unwrap());
    let new = parse_documents(&template_chart(&chart_dir(), &["--is-upgrade"]).unwrap());
    let old_fields = spec_properties(rendered_crd(&old));
    let new_fields = spec_properties(rendered_crd(&new));
    assert!(!old_fields.contains_key(FIELD_ADDED_SINCE));
    assert!(
        new_fields.contains_key(FIELD_ADDED_SINCE),
        "the upgrade's CRD lacks spec.{FIELD_ADDED_SINCE}"
    );
    let mut added: Vec<&String> = new_fields
        .keys()
        .filter(|k| !old_fields.contains_key(*k))
        .collect();
    added.sort();
    assert_eq!(added, [FIELD_ADDED_SINCE]);
}

#[test]
fn the_crd_is_kept_on_uninstall_and_left_alone_by_argo_cd() {
    let objects = parse_documents(&template(&[], &[]).unwrap());
    let crd = rendered_crd(&objects);
    let annotations = &crd["metadata"]["annotations"];
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    let options = sync_options(crd);
    for wanted in ["Prune=false", "Delete=false"] {
        assert!(options.contains(&wanted), "sync-options {options:?}");
    }

    // Sync waves: the CRD strictly before every other object.
    let crd_wave = sync_wave(crd);
    for object in objects
        .iter()
        .filter(|o| kind(o) != "CustomResourceDefinition")
    {
        assert!(
            crd_wave < sync_wave(object),
            "{} {} syncs in wave {}, not after the CRD's {crd_wave}",
            kind(object),
            name(object),
            sync_wave(object)
        );
    }
}

#[test]
fn crds_enabled_false_renders_no_crd() {
    let objects = parse_documents(&template(&[], &["--set", "crds.enabled=false"]).unwrap());
    assert!(of_kind(&objects, "CustomResourceDefinition").is_empty());
    assert_eq!(of_kind(&objects, "Deployment").len(), 1);
}

//! CRD fidelity: every CRD fixture (each `deploy/examples/` file, each broken variant of one, and
//! the cases below for the CEL rules, pruning, defaults and the transition rule) is sent to the
//! Kubernetes API double and to the real kube-apiserver (`KUBEBUILDER_ASSETS`) through the same
//! client calls. Both must accept or refuse each alike, with the same HTTP code, and store the
//! same spec; every difference is printed, including the refusal messages (which may differ in
//! wording without failing the test: see the double's module doc).
//!
//! `import -f`'s admission (`ecs_image_operator::admission`) is the third judge of the creation
//! cases: it must admit or refuse each file as the real server does under `kubectl apply`'s strict
//! field validation (a dry-run create with `fieldValidation=Strict`), with the same HTTP code and
//! naming the same field paths.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;
mod crd_cases;
mod emulator_support;
mod operator_support;

use ecs_image_operator::admission::{ImageImportAdmission, Refusal};
use ecs_image_operator::api::ImageImport;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube_double::{Server, ServerOptions};
use operator_support::envtest;
use serde_json::{Value, json};

/// One request of a case.
#[derive(Clone)]
enum Step {
    /// Create each object of a YAML stream, in order.
    Create(String),
    /// Merge-patch the status of an ImageImport (the operator's view: an import has started).
    Status(&'static str, Value),
    /// Merge-patch the spec or metadata of an ImageImport.
    Patch(&'static str, Value),
}

/// What a back-end made of the last step: the stored objects, or the refusal.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Accepted(Vec<Value>),
    Refused { code: u16, message: String },
}

fn ar(kind: &str) -> ApiResource {
    match kind {
        "ImageImport" => ApiResource::erase::<ImageImport>(&()),
        "Secret" => ApiResource::erase::<Secret>(&()),
        other => panic!("no fixture of kind {other}"),
    }
}

fn refused(error: kube::Error) -> Verdict {
    match error {
        kube::Error::Api(status) => Verdict::Refused {
            code: status.code,
            message: status.message,
        },
        other => panic!("not an API answer: {other:?}"),
    }
}

/// What is compared of a stored object: kind, name and spec (Secrets: the data keys).
fn essence(object: &Value) -> Value {
    json!({
        "kind": object["kind"],
        "name": object["metadata"]["name"],
        "spec": object["spec"],
        "dataKeys": object["data"].as_object().map(|d| d.keys().cloned().collect::<Vec<_>>()),
        "finalizers": object["metadata"]["finalizers"],
    })
}

async fn run_step(client: &Client, namespace: &str, step: &Step) -> Verdict {
    let imports =
        Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar("ImageImport"));
    match step {
        Step::Create(yaml) => {
            let mut stored = Vec::new();
            for doc in chart_support::parse_documents(yaml) {
                let kind = chart_support::kind(&doc).to_string();
                let api =
                    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar(&kind));
                let mut object: DynamicObject = serde_json::from_value(doc).unwrap();
                object.metadata.namespace = Some(namespace.to_string());
                match api.create(&PostParams::default(), &object).await {
                    Ok(created) => {
                        let mut value = serde_json::to_value(created).unwrap();
                        value["kind"] = Value::from(kind);
                        stored.push(essence(&value));
                    }
                    Err(error) => return refused(error),
                }
            }
            Verdict::Accepted(stored)
        }
        Step::Status(name, status) => {
            match imports
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
            {
                Ok(object) => Verdict::Accepted(vec![
                    json!({"status": serde_json::to_value(object).unwrap()["status"]}),
                ]),
                Err(error) => refused(error),
            }
        }
        Step::Patch(name, patch) => {
            match imports
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(object) => {
                    let mut value = serde_json::to_value(object).unwrap();
                    value["kind"] = Value::from("ImageImport");
                    Verdict::Accepted(vec![essence(&value)])
                }
                Err(error) => refused(error),
            }
        }
    }
}

async fn create_namespace(client: &Client, namespace: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace =
        serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

/// Runs a case's steps in a fresh namespace; every step but the last must be accepted.
async fn run_case(client: &Client, namespace: &str, steps: &[Step]) -> Verdict {
    create_namespace(client, namespace).await;
    let mut verdict = None;
    for (n, step) in steps.iter().enumerate() {
        let result = run_step(client, namespace, step).await;
        if n + 1 < steps.len()
            && let Verdict::Refused { code, message } = &result
        {
            panic!("{namespace}: set-up step {n} refused: {code} {message}");
        }
        verdict = Some(result);
    }
    verdict.unwrap()
}

/// What `import -f`'s admission, or the real server under strict field validation, makes of a
/// file's ImageImports: all admitted, or the first refused, with the HTTP code and the field paths
/// named (sorted).
#[derive(Debug, Clone, PartialEq)]
enum Judged {
    Admitted,
    Refused { code: u16, fields: Vec<String> },
}

fn refused_naming(code: u16, fields: impl IntoIterator<Item = String>) -> Judged {
    let mut fields: Vec<String> = fields.into_iter().collect();
    fields.sort();
    fields.dedup();
    Judged::Refused { code, fields }
}

/// The admission's verdict, and its causes as `field: message` (the strict decoding error whole).
fn judged_by_admission(admission: &ImageImportAdmission, yaml: &str) -> (Judged, String) {
    for mut doc in chart_support::parse_documents(yaml) {
        if chart_support::kind(&doc) != "ImageImport" {
            continue;
        }
        if let Err(refusal) = admission.admit(&mut doc) {
            let fields = refusal.fields().into_iter().map(str::to_string);
            return match &refusal {
                Refusal::UnknownFields { .. } => (refused_naming(400, fields), refusal.to_string()),
                Refusal::Invalid { causes, .. } => {
                    let text: Vec<String> = causes.iter().map(ToString::to_string).collect();
                    (refused_naming(422, fields), text.join("; "))
                }
            };
        }
    }
    (Judged::Admitted, String::new())
}

/// The real server's verdict on a dry-run create of each ImageImport of the file with
/// `fieldValidation=Strict`, as `kubectl apply` sends it, in a fresh namespace; its causes as
/// `field: message` (a strict decoding error's message whole).
async fn judged_by_real_server(client: &Client, namespace: &str, yaml: &str) -> (Judged, String) {
    create_namespace(client, namespace).await;
    let resource = ar("ImageImport");
    let url = format!(
        "/apis/{}/namespaces/{namespace}/{}",
        resource.api_version, resource.plural
    );
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for mut doc in chart_support::parse_documents(yaml) {
        if chart_support::kind(&doc) != "ImageImport" {
            continue;
        }
        doc["metadata"]["namespace"] = Value::from(namespace);
        let mut request = kube::core::Request::new(url.as_str())
            .create(&dry_run, serde_json::to_vec(&doc).unwrap())
            .unwrap();
        let uri = format!("{}&fieldValidation=Strict", request.uri());
        *request.uri_mut() = uri.parse().unwrap();
        match client.request::<Value>(request).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) => {
                let causes = status.details.map(|d| d.causes).unwrap_or_default();
                if causes.is_empty() {
                    let unknown = status
                        .message
                        .split("unknown field \"")
                        .skip(1)
                        .filter_map(|rest| rest.split('"').next())
                        .map(str::to_string)
                        .collect::<Vec<_>>();
                    return (refused_naming(status.code, unknown), status.message);
                }
                let text: Vec<String> = causes
                    .iter()
                    .map(|c| format!("{}: {}", c.field, c.message))
                    .collect();
                let fields = causes.into_iter().map(|c| c.field);
                return (refused_naming(status.code, fields), text.join("; "));
            }
            Err(other) => panic!("not an API answer: {other:?}"),
        }
    }
    (Judged::Admitted, String::new())
}

/// Every case: (what, steps, whether the real API server is expected to accept it).
fn cases() -> Vec<(String, Vec<Step>, bool)> {
    let mut cases = Vec::new();
    for (file, text) in crd_cases::examples() {
        cases.push((
            format!("deploy/examples/{file}"),
            vec![Step::Create(text)],
            true,
        ));
    }
    for (what, yaml, _) in crd_cases::broken_examples() {
        cases.push((format!("broken: {what}"), vec![Step::Create(yaml)], false));
    }
    let minimal = crd_cases::example("minimal.yaml");
    let edit = |from: &str, to: &str| {
        let changed = minimal.replace(from, to);
        assert_ne!(changed, minimal, "{from} not in minimal.yaml");
        changed
    };
    let more: Vec<(&str, String, bool)> = vec![
        (
            "a description with a URL",
            edit(
                "  imageName:",
                "  description: https://example.com\n  imageName:",
            ),
            false,
        ),
        (
            "an image name starting with acs:",
            edit("imageName: ubuntu-22.04-base", "imageName: \"acs:ubuntu\""),
            false,
        ),
        (
            "a tag value starting with acs:",
            edit("  imageName:", "  tags:\n    team: \"acs:x\"\n  imageName:"),
            false,
        ),
        (
            "a Linux platform with osType windows",
            edit(
                "  imageName:",
                "  platform: Ubuntu\n  osType: windows\n  imageName:",
            ),
            false,
        ),
        (
            // A schema error and a CEL rule's error in one object.
            "a description too long and a Linux platform with osType windows",
            edit(
                "  imageName:",
                &format!(
                    "  description: {}\n  platform: Ubuntu\n  osType: windows\n  imageName:",
                    "d".repeat(300)
                ),
            ),
            false,
        ),
        (
            // A pattern error does not keep the rules from being evaluated.
            "a bucket name with capitals and a Linux platform with osType windows",
            edit(
                "  imageName:",
                "  platform: Ubuntu\n  osType: windows\n  imageName:",
            )
            .replace("ossBucket: ", "ossBucket: Capital"),
            false,
        ),
        (
            // A missing value with a CEL error: the rules are not evaluated.
            "no regionId and a Linux platform with osType windows",
            edit(
                "  regionId: cn-hangzhou\n",
                "  platform: Ubuntu\n  osType: windows\n",
            ),
            false,
        ),
        (
            "an unknown field (pruned)",
            edit("  imageName:", "  imageNmae: typo\n  imageName:"),
            true,
        ),
        (
            "deletionPolicy Retain",
            edit("  imageName:", "  deletionPolicy: Retain\n  imageName:"),
            true,
        ),
        (
            "an unknown deletionPolicy",
            edit("  imageName:", "  deletionPolicy: Keep\n  imageName:"),
            false,
        ),
    ];
    for (what, yaml, accepted) in more {
        cases.push((what.to_string(), vec![Step::Create(yaml)], accepted));
    }
    let started = json!({"importTaskId": "t-123", "phase": "Importing"});
    cases.push((
        "regionId changed after the import started (transition rule)".into(),
        vec![
            Step::Create(minimal.clone()),
            Step::Status("ubuntu-2204", started.clone()),
            Step::Patch("ubuntu-2204", json!({"spec": {"regionId": "cn-shanghai"}})),
        ],
        false,
    ));
    cases.push((
        "imageName changed after the import started".into(),
        vec![
            Step::Create(minimal.clone()),
            Step::Status("ubuntu-2204", started),
            Step::Patch("ubuntu-2204", json!({"spec": {"imageName": "renamed"}})),
        ],
        true,
    ));
    let upload = crd_cases::example("upload.yaml");
    let other_source = json!({"spec": {"diskDeviceMappings": [{
        "ossBucket": "my-images", "ossObject": "uploads/ubuntu.qcow2", "format": "QCOW2",
        "source": {"url": "https://images.example.com/ubuntu.qcow2", "cleanup": "Delete"}
    }]}});
    cases.push((
        "a source changed after the import started".into(),
        vec![
            Step::Create(upload.clone()),
            Step::Status(
                "ubuntu-from-url",
                json!({"importTaskId": "t-123", "phase": "Importing"}),
            ),
            Step::Patch("ubuntu-from-url", other_source.clone()),
        ],
        false,
    ));
    cases.push((
        "a source changed while uploading".into(),
        vec![
            Step::Create(upload),
            Step::Status(
                "ubuntu-from-url",
                json!({"phase": "Uploading", "progress": 40}),
            ),
            Step::Patch("ubuntu-from-url", other_source),
        ],
        true,
    ));
    cases.push((
        "regionId changed before the import started".into(),
        vec![
            Step::Create(minimal),
            Step::Patch("ubuntu-2204", json!({"spec": {"regionId": "cn-shanghai"}})),
        ],
        true,
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crd_fixture_is_judged_alike_by_the_double_and_the_real_api_server() {
    let Some(real) = envtest::get_or_say_why("CRD fidelity") else {
        return;
    };
    let real = real.admin_client().await;
    let double = Server::start(ServerOptions::default()).await.unwrap();
    double
        .apply_yaml(&ecs_image_operator::api::crd_yaml().unwrap())
        .unwrap();
    let double_client = operator_support::kube_client(&double).await;

    let admission = ImageImportAdmission::new().unwrap();
    let cases = cases();
    let mut differences = Vec::new();
    let mut unexpected = Vec::new();
    let mut admission_differences = Vec::new();
    let mut judged_by_both = 0;
    for (n, (what, steps, accepted)) in cases.iter().enumerate() {
        let namespace = format!("fidelity-{n}");
        let on_double = run_case(&double_client, &namespace, steps).await;
        let on_real = run_case(&real, &namespace, steps).await;
        if let [Step::Create(yaml)] = steps.as_slice() {
            let (by_admission, admission_text) = judged_by_admission(&admission, yaml);
            let (by_real, real_text) =
                judged_by_real_server(&real, &format!("strict-{n}"), yaml).await;
            println!("{what}: admission {by_admission:?}, kube-apiserver (strict) {by_real:?}");
            if by_admission != by_real {
                admission_differences.push(format!(
                    "{what}: admission {by_admission:?}, kube-apiserver (strict) {by_real:?}\n  \
                     admission: {admission_text}\n  real:      {real_text}"
                ));
            } else if admission_text != real_text {
                println!(
                    "  message differs (not a failure):\n    admission: {admission_text}\n    real:      {real_text}"
                );
            }
            judged_by_both += 1;
        }
        let verdict = |v: &Verdict| match v {
            Verdict::Accepted(_) => "accepted".to_string(),
            Verdict::Refused { code, .. } => format!("refused ({code})"),
        };
        println!(
            "{what}: double {}, kube-apiserver {}",
            verdict(&on_double),
            verdict(&on_real)
        );
        if matches!(on_real, Verdict::Accepted(_)) != *accepted {
            unexpected.push(format!("{what}: the real server {}", verdict(&on_real)));
        }
        match (&on_double, &on_real) {
            (Verdict::Accepted(a), Verdict::Accepted(b)) if a != b => differences.push(format!(
                "{what}: stored differently\n  double: {a:?}\n  real:   {b:?}"
            )),
            (
                Verdict::Refused {
                    code: a,
                    message: ma,
                },
                Verdict::Refused {
                    code: b,
                    message: mb,
                },
            ) => {
                if a != b {
                    differences.push(format!(
                        "{what}: refused with {a} by the double, {b} by the real server"
                    ));
                }
                if ma != mb {
                    println!(
                        "  message differs (not a failure):\n    double: {ma}\n    real:   {mb}"
                    );
                }
            }
            (a, b) if verdict(a) != verdict(b) => {
                differences.push(format!("{what}: double {a:?}\n  real {b:?}"))
            }
            _ => {}
        }
    }
    for difference in &differences {
        println!("DIFFERENCE {difference}");
    }
    assert!(
        unexpected.is_empty(),
        "cases the real server judged unexpectedly: {unexpected:#?}"
    );
    assert!(
        differences.is_empty(),
        "{} differences between the double and kube-apiserver: {differences:#?}",
        differences.len()
    );
    assert!(judged_by_both >= 20, "{judged_by_both} creation cases");
    assert!(
        admission_differences.is_empty(),
        "{} verdicts of the admission differ from kube-apiserver's: {admission_differences:#?}",
        admission_differences.len()
    );
}

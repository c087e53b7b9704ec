//! The Helm chart: `helm lint --strict`, `helm template` with every values file under the chart's
//! `ci/`, and checks on what it renders: restricted pods, RBAC verbs exactly as the operator needs
//! them, no cluster-wide RBAC in namespaced mode, credentials only by Secret reference, a schema that
//! refuses bad values, and a CRD copy identical to `crds/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly by design

mod chart_support;

use std::collections::BTreeSet;

use chart_support::{
    NAMESPACE, RELEASE, chart_dir, ci_values_files, kind, name, of_kind, one, parse_documents,
    repo, run_helm, template,
};
use serde_json::{Value, json};

fn render(values_file: &str) -> Vec<Value> {
    let yaml = template(&[values_file], &[])
        .unwrap_or_else(|error| panic!("helm template with {values_file} failed:\n{error}"));
    parse_documents(&yaml)
}

fn render_ci(file: &str) -> Vec<Value> {
    render(&format!("charts/ecs-image-operator/ci/{file}"))
}

/// Pod specs of every workload's template and of every bare Pod (the `helm test` hook).
fn pod_specs(objects: &[Value]) -> Vec<(&str, &Value)> {
    objects
        .iter()
        .filter_map(|o| match kind(o) {
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" => {
                Some((name(o), &o["spec"]["template"]["spec"]))
            }
            "Pod" => Some((name(o), &o["spec"])),
            _ => None,
        })
        .collect()
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|key| pod[key].as_array().into_iter().flatten())
        .collect()
}

fn env<'a>(container: &'a Value, wanted: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == wanted)
}

fn operator_container(objects: &[Value]) -> &Value {
    let deployment = one(objects, "Deployment");
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "operator")
        .expect("a container named operator")
}

#[test]
fn the_chart_lints_strictly_with_every_values_file() {
    let chart = chart_dir();
    for file in ci_values_files() {
        let result = run_helm(&[
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "--namespace",
            NAMESPACE,
            "--values",
            &file,
        ]);
        if let Err(error) = result {
            panic!("helm lint --strict with {file} failed:\n{error}");
        }
    }
}

#[test]
fn every_values_file_renders_at_least_the_deployment_and_its_rbac() {
    let files = ci_values_files();
    assert!(
        files.len() >= 6,
        "expected the chart's ci/ values files, found {files:?}"
    );
    for file in files {
        let objects = render(&file);
        for wanted in ["ServiceAccount", "Deployment"] {
            assert_eq!(of_kind(&objects, wanted).len(), 1, "{file}: one {wanted}");
        }
        let roles = of_kind(&objects, "ClusterRole").len() + of_kind(&objects, "Role").len();
        assert!(roles >= 1, "{file}: no RBAC rendered");
        for object in &objects {
            let cluster_scoped = matches!(
                kind(object),
                "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
            );
            let namespace = object["metadata"]["namespace"].as_str();
            if cluster_scoped {
                assert_eq!(namespace, None, "{file}: {} {}", kind(object), name(object));
            } else {
                assert!(
                    namespace.is_some(),
                    "{file}: {} {} has no namespace",
                    kind(object),
                    name(object)
                );
            }
            assert_eq!(
                object["metadata"]["labels"]["app.kubernetes.io/name"],
                "ecs-image-operator",
                "{file}: {} {} lacks the chart's labels",
                kind(object),
                name(object)
            );
        }
    }
}

#[test]
fn no_container_runs_as_root_and_every_security_context_is_restricted() {
    for file in ci_values_files() {
        let objects = render(&file);
        let pods = pod_specs(&objects);
        assert!(!pods.is_empty(), "{file}: no workload rendered");
        for (workload, pod) in pods {
            let pod_context = &pod["securityContext"];
            assert_eq!(
                pod_context["runAsNonRoot"], true,
                "{file}/{workload}: pod runAsNonRoot"
            );
            assert_eq!(
                pod_context["runAsUser"], 65532,
                "{file}/{workload}: pod runAsUser"
            );
            assert_eq!(
                pod_context["seccompProfile"]["type"], "RuntimeDefault",
                "{file}/{workload}"
            );
            assert_ne!(pod["hostNetwork"], true, "{file}/{workload}: hostNetwork");
            assert_ne!(pod["hostPID"], true, "{file}/{workload}: hostPID");
            for container in containers(pod) {
                let which = format!("{file}/{workload}/{}", container["name"]);
                let context = &container["securityContext"];
                assert_eq!(context["allowPrivilegeEscalation"], false, "{which}");
                assert_eq!(context["readOnlyRootFilesystem"], true, "{which}");
                assert_eq!(context["runAsNonRoot"], true, "{which}");
                let uid = context["runAsUser"]
                    .as_i64()
                    .expect("runAsUser set on the container");
                assert!(uid > 0, "{which}: runs as uid {uid}");
                assert_eq!(context["capabilities"]["drop"], json!(["ALL"]), "{which}");
                assert!(
                    context["capabilities"]["add"].is_null(),
                    "{which}: adds capabilities"
                );
                assert_ne!(context["privileged"], true, "{which}: privileged");
                assert_eq!(
                    context["seccompProfile"]["type"], "RuntimeDefault",
                    "{which}"
                );
                assert!(
                    container["resources"]["requests"]["memory"].is_string()
                        && container["resources"]["limits"]["memory"].is_string(),
                    "{which}: memory request and limit"
                );
            }
            for volume in pod["volumes"].as_array().into_iter().flatten() {
                assert!(
                    volume["hostPath"].is_null(),
                    "{file}/{workload}: a hostPath volume"
                );
            }
        }
    }
}

#[test]
fn probes_and_the_metrics_port_are_on_8080_named_http() {
    let objects = render_ci("default-values.yaml");
    let operator = operator_container(&objects);
    assert_eq!(operator["args"], json!(["run"]));
    assert_eq!(
        operator["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        operator["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        operator["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    assert_eq!(
        env(operator, "ECS_IMAGE_OPERATOR_PROBE_ADDRESS").unwrap()["value"],
        "0.0.0.0:8080"
    );
    let service = one(&objects, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    let deployment = one(&objects, "Deployment");
    assert_eq!(
        service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
        "the metrics Service selects the operator's pods"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "the operator needs its API token"
    );
    assert_eq!(
        one(&objects, "ServiceAccount")["automountServiceAccountToken"],
        false,
        "other pods using the ServiceAccount do not get the token"
    );
    assert_eq!(
        pod["terminationGracePeriodSeconds"], 30,
        "shutdown timeout 20 s plus 10"
    );
}

/// One RBAC permission: (API group, resource, verb, resource name or "").
type Permission = (String, String, String, String);

fn permissions(role: &Value) -> BTreeSet<Permission> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let names: Vec<String> = match rule["resourceNames"].as_array() {
            Some(names) => names
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect(),
            None => vec![String::new()],
        };
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    for resource_name in &names {
                        out.insert((
                            group.as_str().unwrap().to_string(),
                            resource.as_str().unwrap().to_string(),
                            verb.as_str().unwrap().to_string(),
                            resource_name.clone(),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn table(rows: &[(&str, &str, &[&str], &str)]) -> BTreeSet<Permission> {
    rows.iter()
        .flat_map(|(group, resource, verbs, resource_name)| {
            verbs.iter().map(move |verb| {
                (
                    group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                    resource_name.to_string(),
                )
            })
        })
        .collect()
}

/// What the operator needs where it watches ImageImports, and nothing more.
fn operator_permissions() -> BTreeSet<Permission> {
    table(&[
        // The watcher; the finalizer helper adds and removes the finalizer with JSON patches.
        (
            "ecs.image-import.dev",
            "imageimports",
            &["get", "list", "watch", "patch"],
            "",
        ),
        // Status by server-side apply.
        (
            "ecs.image-import.dev",
            "imageimports/status",
            &["patch"],
            "",
        ),
        (
            "ecs.image-import.dev",
            "imageimports/finalizers",
            &["update"],
            "",
        ),
        // kube-runtime 5's Recorder writes events.k8s.io/v1 Events: create, then patch a repeat.
        ("events.k8s.io", "events", &["create", "patch"], ""),
    ])
}

/// Only in opted-in namespaces: the named Secret is read, Secret metadata watched, and the
/// credentials-in-use finalizer patched on and off. Its data is never written.
fn secret_permissions() -> BTreeSet<Permission> {
    table(&[("", "secrets", &["get", "list", "watch", "patch"], "")])
}

fn named<'a>(objects: &'a [Value], wanted_kind: &str, wanted_name: &str) -> Vec<&'a Value> {
    of_kind(objects, wanted_kind)
        .into_iter()
        .filter(|o| name(o) == wanted_name)
        .collect()
}

fn lease_permissions(lease: &str) -> BTreeSet<Permission> {
    table(&[
        ("coordination.k8s.io", "leases", &["create"], ""),
        ("coordination.k8s.io", "leases", &["get", "update"], lease),
    ])
}

fn assert_binding(binding: &Value, role_kind: &str, role_name: &str) {
    assert_eq!(binding["roleRef"]["kind"], role_kind);
    assert_eq!(binding["roleRef"]["name"], role_name);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}])
    );
}

#[test]
fn cluster_mode_rbac_is_exactly_the_expected_table() {
    let objects = render_ci("default-values.yaml");
    let cluster_roles = of_kind(&objects, "ClusterRole");
    assert_eq!(
        cluster_roles.len(),
        2,
        "the operator's and the Secret reader"
    );
    let cluster_role = named(&objects, "ClusterRole", RELEASE)[0];
    assert_eq!(permissions(cluster_role), operator_permissions());
    assert_binding(
        one(&objects, "ClusterRoleBinding"),
        "ClusterRole",
        name(cluster_role),
    );
    // The Secret reader is bound nowhere by default: no Secret can be read anywhere.
    let reader = named(&objects, "ClusterRole", &format!("{RELEASE}-secret-reader"))[0];
    assert_eq!(permissions(reader), secret_permissions());
    assert!(
        of_kind(&objects, "RoleBinding")
            .iter()
            .all(|b| b["roleRef"]["name"] != name(reader)),
        "no namespace opted in by default"
    );
    assert_eq!(
        env(
            operator_container(&objects),
            "ECS_IMAGE_OPERATOR_SECRET_READER_ROLE"
        )
        .unwrap()["value"],
        name(reader)
    );

    let role = one(&objects, "Role");
    assert_eq!(
        role["metadata"]["namespace"], NAMESPACE,
        "the Lease lives in the release namespace"
    );
    assert_eq!(permissions(role), lease_permissions(RELEASE));
    assert_binding(one(&objects, "RoleBinding"), "Role", name(role));

    let operator = operator_container(&objects);
    assert_eq!(
        env(operator, "ECS_IMAGE_OPERATOR_LEADER_ELECTION").unwrap()["value"],
        "true"
    );
    assert_eq!(
        env(operator, "ECS_IMAGE_OPERATOR_LEADER_ELECTION_LEASE").unwrap()["value"],
        RELEASE
    );
    assert_eq!(
        env(operator, "ECS_IMAGE_OPERATOR_LEADER_ELECTION_NAMESPACE").unwrap()["valueFrom"],
        json!({"fieldRef": {"fieldPath": "metadata.namespace"}})
    );
    assert_eq!(
        env(operator, "POD_NAME").unwrap()["valueFrom"],
        json!({"fieldRef": {"fieldPath": "metadata.name"}})
    );
    assert!(
        env(operator, "ECS_IMAGE_OPERATOR_NAMESPACE").is_none(),
        "watches every namespace"
    );
}

#[test]
fn namespaced_mode_has_no_cluster_wide_rbac() {
    let objects = render_ci("namespaced-values.yaml");
    for cluster_kind in ["ClusterRole", "ClusterRoleBinding"] {
        assert!(
            of_kind(&objects, cluster_kind).is_empty(),
            "namespaced mode renders a {cluster_kind}"
        );
    }
    let roles = of_kind(&objects, "Role");
    for namespace in ["team-a", "team-b"] {
        let watched = roles
            .iter()
            .find(|r| r["metadata"]["namespace"] == namespace && name(r) == RELEASE)
            .unwrap_or_else(|| panic!("a Role in the watched namespace {namespace}"));
        assert_eq!(permissions(watched), operator_permissions());
        let binding = of_kind(&objects, "RoleBinding")
            .into_iter()
            .find(|b| b["metadata"]["namespace"] == namespace && name(b) == RELEASE)
            .unwrap_or_else(|| panic!("a RoleBinding in the watched namespace {namespace}"));
        assert_binding(binding, "Role", name(watched));
    }
    // Secrets only in the opted-in team-b, through a Role of its own.
    let readers: Vec<&&Value> = roles
        .iter()
        .filter(|r| permissions(r) == secret_permissions())
        .collect();
    assert_eq!(readers.len(), 1, "one Secret-reader Role");
    assert_eq!(readers[0]["metadata"]["namespace"], "team-b");
    let reader_binding = of_kind(&objects, "RoleBinding")
        .into_iter()
        .find(|b| b["roleRef"]["name"] == name(readers[0]))
        .expect("the Secret reader is bound");
    assert_eq!(reader_binding["metadata"]["namespace"], "team-b");
    assert_binding(reader_binding, "Role", name(readers[0]));
    for role in &roles {
        if role["metadata"]["namespace"] != "team-b" {
            assert!(
                !permissions(role).iter().any(|p| p.1 == "secrets"),
                "Secret access outside team-b: {role}"
            );
        }
    }
    let lease = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == NAMESPACE)
        .expect("the leader-election Role in the release namespace");
    assert_eq!(permissions(lease), lease_permissions(RELEASE));
    assert_eq!(roles.len(), 4);
    assert_eq!(
        env(operator_container(&objects), "ECS_IMAGE_OPERATOR_NAMESPACE").unwrap()["value"],
        "team-a,team-b"
    );
}

#[test]
fn without_leader_election_there_is_no_lease_access_and_no_rolling_overlap() {
    let objects = render_ci("no-leader-election-values.yaml");
    assert!(
        of_kind(&objects, "Role").is_empty(),
        "a Lease Role without leader election"
    );
    assert!(of_kind(&objects, "RoleBinding").is_empty());
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
    let operator = operator_container(&objects);
    assert_eq!(
        env(operator, "ECS_IMAGE_OPERATOR_LEADER_ELECTION").unwrap()["value"],
        "false"
    );
    assert!(env(operator, "POD_NAME").is_none());

    let with_election = render_ci("full-values.yaml");
    let lease_role = one(&with_election, "Role");
    assert_eq!(
        permissions(lease_role),
        lease_permissions("ecs-image-operator-leader")
    );
    assert_eq!(one(&with_election, "Deployment")["spec"]["replicas"], 2);
}

const CREDENTIAL_VARIABLES: &[&str] = &[
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
];

#[test]
fn credentials_are_referenced_by_secret_key_ref_and_never_embedded() {
    for file in ci_values_files() {
        let objects = render(&file);
        assert!(
            of_kind(&objects, "Secret").is_empty(),
            "{file}: the chart must not create Secrets (credentials are never values)"
        );
        for (workload, pod) in pod_specs(&objects) {
            for container in containers(pod) {
                for variable in container["env"].as_array().into_iter().flatten() {
                    let variable_name = variable["name"].as_str().unwrap();
                    if CREDENTIAL_VARIABLES.contains(&variable_name)
                        || variable_name.starts_with("EMULATOR_KEY")
                    {
                        assert!(
                            variable["value"].is_null()
                                && variable["valueFrom"]["secretKeyRef"]["name"].is_string(),
                            "{file}/{workload}: {variable_name} must come from a secretKeyRef: {variable}"
                        );
                    }
                }
            }
        }
    }

    let objects = render_ci("namespaced-values.yaml");
    let operator = operator_container(&objects);
    for (variable, key, optional) in [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "accessKeyId", Value::Null),
        (
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            "accessKeySecret",
            Value::Null,
        ),
        (
            "ALIBABA_CLOUD_SECURITY_TOKEN",
            "securityToken",
            Value::Bool(true),
        ),
    ] {
        let reference = &env(operator, variable).unwrap_or_else(|| panic!("{variable} set"))["valueFrom"]
            ["secretKeyRef"];
        assert_eq!(
            reference["name"], "ecs-image-operator-credentials",
            "{variable}"
        );
        assert_eq!(reference["key"], key, "{variable}");
        assert_eq!(reference["optional"], optional, "{variable}");
    }

    let defaults = render_ci("default-values.yaml");
    let operator = operator_container(&defaults);
    for variable in CREDENTIAL_VARIABLES {
        assert!(
            env(operator, variable).is_none(),
            "defaults use the instance RAM role, not {variable}"
        );
    }
}

#[test]
fn rrsa_projects_a_token_for_sts_and_names_the_role() {
    let objects = render_ci("rrsa-values.yaml");
    let deployment = one(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let operator = operator_container(&objects);
    let token_file = env(operator, "ALIBABA_CLOUD_OIDC_TOKEN_FILE").unwrap()["value"]
        .as_str()
        .unwrap();
    let mount = operator["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| token_file.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the token file is on a mounted volume");
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let source = &volume["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(source["audience"], "sts.aliyuncs.com");
    assert_eq!(
        format!(
            "{}/{}",
            mount["mountPath"].as_str().unwrap(),
            source["path"].as_str().unwrap()
        ),
        token_file
    );
    assert_eq!(
        env(operator, "ALIBABA_CLOUD_ROLE_ARN").unwrap()["value"],
        "acs:ram::1234567890123456:role/ecs-image-operator"
    );
    assert!(env(operator, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN").unwrap()["value"].is_string());
    assert_eq!(
        env(operator, "ALIBABA_CLOUD_STS_REGION").unwrap()["value"],
        "cn-hangzhou"
    );
    assert_eq!(
        one(&objects, "ServiceAccount")["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"],
        "ecs-image-operator"
    );
    for variable in CREDENTIAL_VARIABLES {
        assert!(
            env(operator, variable).is_none(),
            "RRSA and {variable} together"
        );
    }
}

#[test]
fn the_emulator_sidecar_listens_on_loopback_and_the_operator_uses_it() {
    let objects = render_ci("emulator-values.yaml");
    let deployment = one(&objects, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let emulator = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "emulator")
        .expect("an emulator container");
    assert_eq!(
        emulator["args"],
        json!([
            "emulator",
            "--listen",
            "127.0.0.1:9100",
            "--time-scale",
            "600"
        ])
    );
    assert!(
        emulator["ports"].is_null(),
        "the emulator is not exposed on the pod IP"
    );
    assert_eq!(
        env(emulator, "ECS_IMAGE_OPERATOR_EMULATOR_ACCESS_KEYS").unwrap()["value"],
        "$(EMULATOR_KEY_ID):$(EMULATOR_KEY_SECRET)"
    );
    let operator = operator_container(&objects);
    assert_eq!(
        env(operator, "ECS_IMAGE_OPERATOR_ECS_ENDPOINT").unwrap()["value"],
        "http://127.0.0.1:9100"
    );
    for container in [emulator, operator] {
        for (variable, key) in [
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "accessKeyId"),
            ("EMULATOR_KEY_ID", "accessKeyId"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "accessKeySecret"),
            ("EMULATOR_KEY_SECRET", "accessKeySecret"),
        ] {
            if let Some(found) = env(container, variable) {
                assert_eq!(found["valueFrom"]["secretKeyRef"]["name"], "emulator-key");
                assert_eq!(found["valueFrom"]["secretKeyRef"]["key"], key);
            }
        }
    }
    assert!(env(operator, "ALIBABA_CLOUD_ACCESS_KEY_ID").is_some());
    assert!(env(emulator, "EMULATOR_KEY_ID").is_some());
}

#[test]
fn network_policy_pdb_and_service_monitor_render_as_configured() {
    let objects = render_ci("full-values.yaml");
    let policy = one(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let ingress = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    let egress = policy["spec"]["egress"].as_array().unwrap();
    let ports: Vec<&Value> = egress.iter().map(|rule| &rule["ports"]).collect();
    assert_eq!(
        ports,
        [
            &json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]),
            &json!([{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]),
            &json!([{"port": 443, "protocol": "TCP"}]),
        ],
        "egress: DNS, the API server, ECS/STS (no metadata service with an AccessKey Secret)"
    );
    assert_eq!(
        egress[1]["to"],
        json!([{"ipBlock": {"cidr": "10.0.0.1/32"}}])
    );
    assert_eq!(
        egress[2]["to"],
        json!([{"ipBlock": {"cidr": "100.64.0.0/10"}}])
    );

    let pdb = one(&objects, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let monitor = one(&objects, "ServiceMonitor");
    let service = one(&objects, "Service");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        operator_container(&objects)["image"],
        "registry.example.com/platform/ecs-image-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );

    let defaults = render_ci("default-values.yaml");
    for optional in ["NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor"] {
        assert!(
            of_kind(&defaults, optional).is_empty(),
            "{optional} is off by default"
        );
    }
    let with_instance_role = template(&[], &["--set", "networkPolicy.enabled=true"]).unwrap();
    let policy = parse_documents(&with_instance_role)
        .into_iter()
        .find(|o| kind(o) == "NetworkPolicy")
        .unwrap();
    let last = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last,
        json!({"ports": [{"port": 80, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "100.100.100.200/32"}}]}),
        "the instance RAM role needs the metadata service"
    );
}

#[test]
fn the_schema_and_the_templates_refuse_bad_values() {
    let dir = repo().join("tests/fixtures/chart/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the invalid values fixtures, found {}",
        cases.len()
    );
    for case in cases {
        let text = std::fs::read_to_string(&case).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| {
                panic!(
                    "{} must start with `# expect: <error text>`",
                    case.display()
                )
            });
        let relative = case.strip_prefix(repo()).unwrap().display().to_string();
        match template(&[&relative], &[]) {
            Ok(_) => panic!("helm template accepted {relative}"),
            Err(error) => assert!(
                error.contains(expected),
                "{relative}: the error should mention {expected:?}:\n{error}"
            ),
        }
    }
    // And on the command line, the way users most often get it wrong.
    let error = template(&[], &["--set-string", "replicas=two"]).unwrap_err();
    assert!(error.contains("/replicas"), "{error}");
    let error = template(&[], &["--set", "emulator.timeScale=0"]).unwrap_err();
    assert!(error.contains("timeScale"), "{error}");
}

#[test]
fn an_umbrella_chart_can_depend_on_this_one_and_pass_global_values() {
    let chart_yaml = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let version = chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .unwrap()
        .trim();
    let dir = tempfile::tempdir().unwrap();
    let umbrella = dir.path().join("platform");
    std::fs::create_dir_all(&umbrella).unwrap();
    std::fs::write(
        umbrella.join("Chart.yaml"),
        format!(
            "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: ecs-image-operator\n    \
             version: {version}\n    repository: file://{}\n",
            chart_dir().display()
        ),
    )
    .unwrap();
    // Helm hands `global` to every subchart, whether or not the umbrella sets it.
    std::fs::write(
        umbrella.join("values.yaml"),
        "global:\n  imageRegistry: registry.example.com\necs-image-operator:\n  replicas: 2\n",
    )
    .unwrap();
    let umbrella_path = umbrella.to_str().unwrap();
    run_helm(&["dependency", "build", umbrella_path])
        .unwrap_or_else(|error| panic!("helm dependency build: {error}"));
    let render = |extra: &[&str]| {
        let mut args = vec![
            "template",
            "platform",
            umbrella_path,
            "--namespace",
            NAMESPACE,
        ];
        args.extend(extra);
        run_helm(&args)
    };
    let objects = parse_documents(
        &render(&[]).unwrap_or_else(|error| panic!("the umbrella chart does not render: {error}")),
    );
    let deployment = one(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(name(deployment), "platform-ecs-image-operator");
    assert_eq!(of_kind(&objects, "CustomResourceDefinition").len(), 1);

    // The subchart's schema still checks its own values inside the umbrella.
    let error = render(&["--set-string", "ecs-image-operator.replicas=two"]).unwrap_err();
    assert!(error.contains("replicas"), "{error}");
}

#[test]
fn more_than_one_replica_is_spread_over_nodes() {
    let single = parse_documents(&template(&[], &[]).unwrap());
    let pod = &one(&single, "Deployment")["spec"]["template"];
    assert!(
        pod["spec"]["topologySpreadConstraints"].is_null(),
        "one replica needs no spread"
    );

    let two = parse_documents(&template(&[], &["--set", "replicas=2"]).unwrap());
    let pod = &one(&two, "Deployment")["spec"]["template"];
    let constraints = pod["spec"]["topologySpreadConstraints"].as_array().unwrap();
    assert_eq!(constraints.len(), 1, "{constraints:?}");
    let spread = &constraints[0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["maxSkew"], 1);
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    let selector = spread["labelSelector"]["matchLabels"].as_object().unwrap();
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            &pod["metadata"]["labels"][key], value,
            "the spread's selector does not select the operator's pods ({key})"
        );
    }
    assert_eq!(spread["matchLabelKeys"], json!(["pod-template-hash"]));

    // Your own constraints replace the chart's.
    let own = parse_documents(
        &template(
            &[],
            &[
                "--set",
                "replicas=3",
                "--set",
                "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                "--set",
                "topologySpreadConstraints[0].maxSkew=2",
                "--set",
                "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
            ],
        )
        .unwrap(),
    );
    assert_eq!(
        one(&own, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"],
        json!([{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}])
    );
}

#[test]
fn the_network_policy_egress_narrows_to_the_ecs_and_sts_endpoints() {
    let cidrs = |policy: &Value| -> Vec<String> {
        policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| rule["to"].as_array().into_iter().flatten())
            .filter_map(|peer| peer["ipBlock"]["cidr"].as_str().map(String::from))
            .collect()
    };
    let render_policy = |extra: &[&str]| {
        let mut args = vec![
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "credentials.existingSecret=s",
        ];
        args.extend(extra);
        parse_documents(&template(&[], &args).unwrap())
    };
    // Defaults: https anywhere, which is what the public endpoints need.
    let defaults = render_policy(&[]);
    let policy = one(&defaults, "NetworkPolicy");
    assert_eq!(cidrs(policy), ["0.0.0.0/0"]);

    let narrowed = render_policy(&[
        "--set",
        "networkPolicy.apiServerCidrs={10.0.0.1/32}",
        "--set",
        "networkPolicy.ecsCidrs={192.0.2.10/32,192.0.2.11/32}",
        "--set",
        "networkPolicy.ecsPorts={443}",
        "--set",
        "networkPolicy.stsCidrs={198.51.100.7/32}",
        "--set",
        "networkPolicy.stsPorts={8443}",
    ]);
    let policy = one(&narrowed, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["egress"],
        json!([
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
             "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]},
            {"ports": [{"port": 443, "protocol": "TCP"}],
             "to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}, {"ipBlock": {"cidr": "192.0.2.11/32"}}]},
            {"ports": [{"port": 8443, "protocol": "TCP"}],
             "to": [{"ipBlock": {"cidr": "198.51.100.7/32"}}]},
        ]),
        "egress: DNS, the API server, ECS, STS, and nothing else"
    );
    assert!(!cidrs(policy).contains(&"0.0.0.0/0".to_string()));

    // Every networkPolicy value is documented in the chart's README.
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    let section = values.split("\nnetworkPolicy:\n").nth(1).unwrap();
    let keys: Vec<&str> = section
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| l.strip_prefix("  ")?.split(':').next())
        .filter(|k| !k.starts_with('#') && !k.starts_with(' '))
        .collect();
    assert!(keys.len() >= 8, "{keys:?}");
    for key in keys {
        assert!(
            readme.contains(&format!("networkPolicy.{key}")),
            "the chart README does not document networkPolicy.{key}"
        );
    }
}

#[test]
fn helm_test_asks_the_operators_service_for_readyz() {
    let objects = parse_documents(&template(&[], &[]).unwrap());
    let pods = of_kind(&objects, "Pod");
    assert_eq!(pods.len(), 1, "one helm test Pod");
    let pod = pods[0];
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let service = one(&objects, "Service");
    let url = format!(
        "http://{}.{}.svc:{}/readyz",
        name(service),
        service["metadata"]["namespace"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    let command = &pod["spec"]["containers"][0]["command"];
    assert_eq!(command[0], "wget");
    assert_eq!(
        command.as_array().unwrap().last().unwrap(),
        &json!(url),
        "{command}"
    );
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"], "http",
        "the Service reaches the container port that serves /readyz"
    );
    // `helm template --skip-tests` (the plain manifests, Argo CD's skipTests) leaves it out.
    let skipped = parse_documents(&template(&[], &["--skip-tests"]).unwrap());
    assert!(of_kind(&skipped, "Pod").is_empty());

    for off in ["helmTest.enabled=false", "metrics.service.enabled=false"] {
        let objects = parse_documents(&template(&[], &["--set", off]).unwrap());
        assert!(of_kind(&objects, "Pod").is_empty(), "{off}: no test Pod");
    }

    // A NetworkPolicy that only admits some peers to port 8080 admits the test Pod too.
    let objects = render_ci("full-values.yaml");
    let pod_labels = &one(&objects, "Pod")["metadata"]["labels"];
    let from = one(&objects, "NetworkPolicy")["spec"]["ingress"][0]["from"]
        .as_array()
        .unwrap();
    let admitted = from.iter().any(|peer| {
        peer["podSelector"]["matchLabels"]
            .as_object()
            .is_some_and(|labels| labels.iter().all(|(k, v)| &pod_labels[k] == v))
    });
    assert!(admitted, "the test Pod cannot reach port 8080: {from:?}");
}

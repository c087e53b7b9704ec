//! The CRD's test fixtures, shared by `tests/deploy.rs` (on the double) and `tests/envtest_crd.rs`
//! (the double against the real API server): every file of `deploy/examples/`, and the broken
//! variants of them that the schema or a CEL rule must refuse.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::Path;

/// `deploy/examples/*.yaml` as (file name, text), sorted by name.
pub fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            )
        })
        .collect()
}

/// The text of one example.
pub fn example(file: &str) -> String {
    examples()
        .into_iter()
        .find(|(f, _)| f == file)
        .unwrap_or_else(|| panic!("no deploy/examples/{file}"))
        .1
}

/// Examples broken in one way each, as (what, YAML, a word the refusal must mention).
pub fn broken_examples() -> Vec<(&'static str, String, &'static str)> {
    let text = example;
    vec![
        ("arm64 with BIOS", text("arm64-uefi.yaml").replace("bootMode: UEFI", "bootMode: BIOS"), "UEFI"),
        (
            "Windows platform with osType linux",
            text("windows-byol.yaml").replace("osType: windows", "osType: linux"),
            "osType windows",
        ),
        (
            "no disks",
            text("minimal.yaml").replace(
                "  diskDeviceMappings:\n    - ossBucket: my-images\n      ossObject: ubuntu/ubuntu-22.04.qcow2\n",
                "  diskDeviceMappings: []\n",
            ),
            "diskDeviceMappings",
        ),
        (
            "a reserved tag key",
            text("data-disks.yaml").replace("    team: data", "    ecs-image-operator/uid: forged"),
            "ecs-image-operator/",
        ),
        ("an unknown license", text("windows-byol.yaml").replace("licenseType: BYOL", "licenseType: OEM"), "licenseType"),
        (
            "a copy in the image's own region",
            text("distribution.yaml").replace("- regionId: cn-shanghai", "- regionId: cn-hangzhou"),
            "own regionId",
        ),
        (
            "a region twice",
            text("distribution.yaml").replace("- regionId: cn-beijing", "- regionId: cn-shanghai"),
            "twice",
        ),
        (
            "an account twice",
            text("distribution.yaml").replace("6543210987654321", "1234567890123456"),
            "twice",
        ),
        (
            "a KMS key for a copy that is not encrypted",
            text("distribution.yaml").replace("encrypted: true", "kmsKeyId: key-123"),
            "encrypted: true",
        ),
        (
            "an account ID that is not one",
            text("distribution.yaml").replace("\"6543210987654321\"", "ops-team"),
            "shareWith",
        ),
        (
            "a source with both url and file",
            text("upload.yaml").replace(
                "        url: http://127.0.0.1:8099/images/ubuntu.qcow2\n",
                "        url: http://127.0.0.1:8099/images/ubuntu.qcow2\n        file: /tmp/ubuntu.qcow2\n",
            ),
            "exactly one of url and file",
        ),
        (
            "a source with neither url nor file",
            text("upload.yaml").replace("        url: http://127.0.0.1:8099/images/ubuntu.qcow2\n", ""),
            "exactly one of url and file",
        ),
        (
            "a source over plain http to a host that is not loopback",
            text("upload.yaml").replace("http://127.0.0.1:8099/", "http://images.example.com/"),
            "loopback",
        ),
        (
            "a source over plain http to a name that only starts like loopback",
            text("upload.yaml").replace("http://127.0.0.1:8099/", "http://127.0.0.1.example.com/"),
            "loopback",
        ),
        (
            "a source whose sha256 is not 64 hex digits",
            text("upload.yaml").replace(
                "\"0000000000000000000000000000000000000000000000000000000000000000\"",
                "\"000000000000000000000000000000000000000000000000000000000000000g\"",
            ),
            "sha256",
        ),
        (
            "a source of size 0",
            text("upload.yaml").replace("        cleanup: Delete\n", "        size: 0\n        cleanup: Delete\n"),
            "size",
        ),
        (
            "an unknown source cleanup",
            text("upload.yaml").replace("cleanup: Delete", "cleanup: Keep"),
            "cleanup",
        ),
    ]
}

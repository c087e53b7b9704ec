//! `import -f`'s file as people write it: one or several YAML documents (`---`), ImageImports and
//! the credentials Secrets they name, from a file or standard input (`-`). What is not such a
//! file is refused before anything else happens, with what it is instead: a directory, a binary
//! file (a disk image named by mistake), an endless or huge file, another kind of object.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use crate::admission::{AdmissionError, ImageImportAdmission, Refusal};
use crate::api::image_import::ImageImport;
use crate::ecs::{Credentials, CredentialsError};

/// The largest file read. kube-apiserver takes requests of at most 3 MiB; a file of several such
/// objects is still far below this, and `/dev/zero` or a disk image stops here.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The API version of the ImageImports a file may hold.
const API_VERSION: &str = "ecs.image-import.dev/v1alpha1";

/// What a manifest file holds: its ImageImports, each with the credentials its
/// `credentialsSecretRef` names when the file has that Secret too.
#[derive(Debug)]
pub struct Manifest {
    /// The ImageImports, in file order.
    pub imports: Vec<Planned>,
}

/// One ImageImport of the file and where its credentials come from.
#[derive(Debug)]
pub struct Planned {
    /// The resource (namespace defaulted to `default`).
    pub object: ImageImport,
    /// The Secret document its `credentialsSecretRef` names.
    pub secret: SecretDocument,
}

/// The Secret document an ImageImport names, as far as the file tells.
#[derive(Debug)]
pub enum SecretDocument {
    /// The ImageImport names no Secret.
    NotNamed,
    /// It names one that is not in the file (the credentials of the environment are used).
    NotInFile(String),
    /// The file holds it.
    Found {
        /// The Secret's name.
        name: String,
        /// Its AccessKey.
        credentials: Credentials,
    },
}

impl SecretDocument {
    /// What the list of credential sources tried says of this one, first in that list (`None`:
    /// it was found, so nothing else was tried).
    pub fn tried(&self) -> Option<String> {
        match self {
            Self::NotNamed => {
                Some("Secret document: the ImageImport has no credentialsSecretRef".to_string())
            }
            Self::NotInFile(name) => Some(format!(
                "Secret document: credentialsSecretRef names Secret {name}, which the file does not hold"
            )),
            Self::Found { .. } => None,
        }
    }
}

/// Why a manifest file cannot be imported. Each message names the file (`standard input` for
/// `-`) and, where there are several, the document (counted from 1).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("failed to read {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory was named.
    #[error("{file} is a directory: name one manifest file (or `-` for standard input)")]
    Directory {
        /// The directory.
        file: String,
    },
    /// More than [`MAX_MANIFEST_BYTES`], or endless.
    #[error(
        "{file} is larger than {} MiB (or endless): an ImageImport manifest is a few KiB of YAML",
        MAX_MANIFEST_BYTES >> 20
    )]
    TooLarge {
        /// The file.
        file: String,
    },
    /// NUL bytes or text that is not UTF-8.
    #[error("{file} is not a text file{}", looks_like(*.format))]
    Binary {
        /// The file.
        file: String,
        /// The disk format its first bytes show, when they show one.
        format: Option<&'static str>,
    },
    /// The text is not YAML.
    #[error("{file} is not YAML: {detail}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's words.
        detail: String,
    },
    /// A document is not a Kubernetes object.
    #[error(
        "document {document} of {file} is not a Kubernetes object (it needs apiVersion and kind)"
    )]
    NotAnObject {
        /// The file.
        file: String,
        /// Which document, from 1.
        document: usize,
    },
    /// A document of a kind `import -f` does not take.
    #[error(
        "document {document} of {file} is a {kind} ({api_version}): import -f takes ImageImports \
         ({API_VERSION}) and the Secrets (v1) they name in credentialsSecretRef"
    )]
    OtherKind {
        /// The file.
        file: String,
        /// Which document, from 1.
        document: usize,
        /// Its kind.
        kind: String,
        /// Its apiVersion.
        api_version: String,
    },
    /// The API server would refuse an ImageImport document: kubectl's own words after the
    /// file and document.
    #[error("error when creating \"{file}\" (document {document}): {refusal}")]
    Refused {
        /// The file.
        file: String,
        /// Which document, from 1.
        document: usize,
        /// What the API server would answer.
        refusal: Refusal,
    },
    /// The generated CRD could not be made into an admission (a defect of this binary).
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    /// An ImageImport document the API server would take does not fit the resource's shape.
    #[error("document {document} of {file} is not a valid ImageImport: {detail}")]
    Invalid {
        /// The file.
        file: String,
        /// Which document, from 1.
        document: usize,
        /// What is wrong, as the API server would say it.
        detail: String,
    },
    /// Two ImageImports of one name.
    #[error("{file} holds ImageImport {name} twice")]
    Duplicate {
        /// The file.
        file: String,
        /// Namespace and name.
        name: String,
    },
    /// A Secret document named by an ImageImport holds no usable AccessKey.
    #[error("Secret {name} in {file}: {source}")]
    Secret {
        /// The file.
        file: String,
        /// The Secret's name.
        name: String,
        /// What is wrong with it.
        #[source]
        source: CredentialsError,
    },
    /// Nothing to import.
    #[error("{file} holds no ImageImport")]
    Empty {
        /// The file.
        file: String,
    },
}

fn looks_like(format: Option<&'static str>) -> String {
    match format {
        Some(format) => format!(
            ": it looks like a {format} disk image; name it in a manifest, in \
             diskDeviceMappings[].source.file"
        ),
        None => " (it holds NUL bytes or is not UTF-8)".to_string(),
    }
}

/// How the file is called in messages.
fn shown(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads and checks `path` (`-`: standard input).
pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
    let file = shown(path);
    let bytes = read_capped(path, &file)?;
    let text = text_of(bytes, &file)?;
    parse(&text, &file)
}

fn read_capped(path: &Path, file: &str) -> Result<Vec<u8>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        file: file.to_string(),
        source,
    };
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    } else {
        if std::fs::metadata(path).map_err(read_error)?.is_dir() {
            return Err(ManifestError::Directory {
                file: file.to_string(),
            });
        }
        std::fs::File::open(path)
            .map_err(read_error)?
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    }
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            file: file.to_string(),
        });
    }
    Ok(bytes)
}

fn text_of(bytes: Vec<u8>, file: &str) -> Result<String, ManifestError> {
    let format = || {
        let head = &bytes[..bytes.len().min(crate::upload::format::HEAD)];
        let tail = &bytes[bytes.len().saturating_sub(crate::upload::format::TAIL)..];
        Some(crate::upload::format::detect(head, tail)).filter(|f| *f != "RAW")
    };
    if bytes.contains(&0) {
        return Err(ManifestError::Binary {
            file: file.to_string(),
            format: format(),
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(error) => {
            let bytes = error.into_bytes();
            let head = &bytes[..bytes.len().min(crate::upload::format::HEAD)];
            let detected = crate::upload::format::detect(head, &[]);
            Err(ManifestError::Binary {
                file: file.to_string(),
                format: Some(detected).filter(|f| *f != "RAW"),
            })
        }
    }
}

/// Splits the text into documents and sorts them into ImageImports and the Secrets they name.
pub fn parse(text: &str, file: &str) -> Result<Manifest, ManifestError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|error| ManifestError::Yaml {
            file: file.to_string(),
            detail: error.to_string(),
        })?;
    let admission = ImageImportAdmission::new()?;
    let mut imports = Vec::new();
    let mut secrets = BTreeMap::new();
    for (index, mut document) in documents.into_iter().enumerate() {
        let document_number = index + 1;
        if document.is_null() {
            continue;
        }
        let field = |name: &str| {
            document
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(ManifestError::NotAnObject {
                file: file.to_string(),
                document: document_number,
            });
        };
        match (api_version.as_str(), kind.as_str()) {
            (API_VERSION, "ImageImport") => {
                let invalid = |detail: String| ManifestError::Invalid {
                    file: file.to_string(),
                    document: document_number,
                    detail,
                };
                // As kube-apiserver would, before anything else: unknown fields, the schema and
                // the CEL rules of the same generated CRD; defaults applied.
                admission
                    .admit(&mut document)
                    .map_err(|refusal| ManifestError::Refused {
                        file: file.to_string(),
                        document: document_number,
                        refusal,
                    })?;
                let mut object: ImageImport =
                    serde_json::from_value(document).map_err(|e| invalid(e.to_string()))?;
                object
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".into());
                imports.push(object);
            }
            ("v1", "Secret") => {
                let name = field_at(&document, &["metadata", "name"]).unwrap_or_default();
                let namespace = field_at(&document, &["metadata", "namespace"])
                    .unwrap_or_else(|| "default".into());
                secrets.insert((namespace, name), document);
            }
            _ => {
                return Err(ManifestError::OtherKind {
                    file: file.to_string(),
                    document: document_number,
                    kind,
                    api_version,
                });
            }
        }
    }
    if imports.is_empty() {
        return Err(ManifestError::Empty {
            file: file.to_string(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut planned = Vec::new();
    for object in imports {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        if !seen.insert((namespace.clone(), name.clone())) {
            return Err(ManifestError::Duplicate {
                file: file.to_string(),
                name: format!("{namespace}/{name}"),
            });
        }
        let secret = match &object.spec.credentials_secret_ref {
            None => SecretDocument::NotNamed,
            Some(reference) => match secrets.get(&(namespace, reference.name.clone())) {
                None => SecretDocument::NotInFile(reference.name.clone()),
                Some(document) => SecretDocument::Found {
                    name: reference.name.clone(),
                    credentials: secret_credentials(document).map_err(|source| {
                        ManifestError::Secret {
                            file: file.to_string(),
                            name: reference.name.clone(),
                            source,
                        }
                    })?,
                },
            },
        };
        planned.push(Planned { object, secret });
    }
    Ok(Manifest { imports: planned })
}

fn field_at(document: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(document, |node, key| node.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// A Secret document's keys as the API server would store them: `data` (base64) with
/// `stringData` written over it.
fn secret_credentials(document: &Value) -> Result<Credentials, CredentialsError> {
    let mut data = BTreeMap::new();
    if let Some(encoded) = document.get("data").and_then(Value::as_object) {
        for (key, value) in encoded {
            // A value that is not base64 cannot be a key: left out, so the key reads as missing.
            if let Some(bytes) = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            {
                data.insert(key.clone(), bytes);
            }
        }
    }
    if let Some(plain) = document.get("stringData").and_then(Value::as_object) {
        for (key, value) in plain {
            if let Some(text) = value.as_str() {
                data.insert(key.clone(), text.as_bytes().to_vec());
            }
        }
    }
    Credentials::from_secret_data(&data)
}

#[cfg(test)]
#[allow(clippy::panic)] // a test fails loudly by design
mod tests {
    use super::*;

    const IMPORT: &str = "apiVersion: ecs.image-import.dev/v1alpha1\nkind: ImageImport\n\
        metadata:\n  name: NAME\nspec:\n  regionId: cn-hangzhou\n  REF\
        diskDeviceMappings:\n    - ossBucket: images\n      ossObject: o.raw\n";

    fn import(name: &str, secret: Option<&str>) -> String {
        let reference = secret.map_or(String::new(), |s| {
            format!("credentialsSecretRef:\n    name: {s}\n  ")
        });
        IMPORT.replace("NAME", name).replace("REF", &reference)
    }

    fn secret(name: &str, body: &str) -> String {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{body}")
    }

    #[test]
    fn several_imports_and_the_secrets_they_name_are_sorted_out() -> Result<(), ManifestError> {
        let text = [
            secret(
                "keys",
                "stringData:\n  accessKeyId: LTAIfromfile\n  accessKeySecret: s3cret\n",
            ),
            import("a", Some("keys")),
            import("b", None),
            import("c", Some("elsewhere")),
        ]
        .join("---\n");
        let manifest = parse(&text, "f.yaml")?;
        let names: Vec<_> = manifest
            .imports
            .iter()
            .map(|p| p.object.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        match &manifest.imports[0].secret {
            SecretDocument::Found { name, credentials } => {
                assert_eq!(name, "keys");
                assert_eq!(credentials.access_key_id(), "LTAIfromfile");
                assert_eq!(credentials.access_key_secret(), "s3cret");
            }
            other => panic!("expected the Secret, got {other:?}"),
        }
        assert!(matches!(
            manifest.imports[1].secret,
            SecretDocument::NotNamed
        ));
        assert!(
            matches!(&manifest.imports[2].secret, SecretDocument::NotInFile(n) if n == "elsewhere")
        );
        let tried = manifest.imports[2].secret.tried().unwrap_or_default();
        assert!(tried.contains("Secret elsewhere"), "{tried}");
        assert_eq!(
            manifest.imports[0].object.metadata.namespace.as_deref(),
            Some("default")
        );
        Ok(())
    }

    #[test]
    fn a_secret_in_another_namespace_is_not_the_one_named() -> Result<(), ManifestError> {
        let text = [
            secret(
                "keys",
                "  namespace: other\nstringData:\n  accessKeyId: LTAIx\n  accessKeySecret: y\n",
            ),
            import("a", Some("keys")),
        ]
        .join("---\n");
        let manifest = parse(&text, "f.yaml")?;
        assert!(matches!(
            &manifest.imports[0].secret,
            SecretDocument::NotInFile(_)
        ));
        Ok(())
    }

    #[test]
    fn base64_data_is_decoded_and_string_data_wins() -> Result<(), ManifestError> {
        // "LTAIdata" and "fromdata" in base64.
        let text = [
            secret(
                "keys",
                "data:\n  accessKeyId: TFRBSWRhdGE=\n  accessKeySecret: ZnJvbWRhdGE=\n\
                 stringData:\n  accessKeySecret: fromstring\n",
            ),
            import("a", Some("keys")),
        ]
        .join("---\n");
        let manifest = parse(&text, "f.yaml")?;
        let SecretDocument::Found { credentials, .. } = &manifest.imports[0].secret else {
            panic!("the Secret was not found");
        };
        assert_eq!(credentials.access_key_id(), "LTAIdata");
        assert_eq!(credentials.access_key_secret(), "fromstring");
        Ok(())
    }

    #[test]
    fn a_named_secret_without_a_key_is_refused_without_its_values() {
        let text = [
            secret("keys", "stringData:\n  accessKeyId: LTAIhalf\n"),
            import("a", Some("keys")),
        ]
        .join("---\n");
        let error = parse(&text, "f.yaml").err().map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(error.starts_with("Secret keys in f.yaml: "), "{error}");
        assert!(error.contains("accessKeySecret"), "{error}");
    }

    #[test]
    fn other_kinds_documents_and_duplicates_are_refused_by_name() {
        let refusal = |text: &str| parse(text, "f.yaml").err().map(|e| e.to_string());
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";
        assert_eq!(
            refusal(&[import("a", None), deployment.to_string()].join("---\n")).as_deref(),
            Some(
                "document 2 of f.yaml is a Deployment (apps/v1): import -f takes ImageImports \
                 (ecs.image-import.dev/v1alpha1) and the Secrets (v1) they name in \
                 credentialsSecretRef"
            )
        );
        assert_eq!(
            refusal("just: a map\n").as_deref(),
            Some("document 1 of f.yaml is not a Kubernetes object (it needs apiVersion and kind)")
        );
        assert_eq!(
            refusal(&[import("a", None), import("a", None)].join("---\n")).as_deref(),
            Some("f.yaml holds ImageImport default/a twice")
        );
        assert_eq!(
            refusal(&secret("keys", "")).as_deref(),
            Some("f.yaml holds no ImageImport")
        );
        let yaml = refusal("a: [").unwrap_or_default();
        assert!(yaml.starts_with("f.yaml is not YAML: "), "{yaml}");
    }

    #[test]
    fn binary_files_are_named_for_what_they_look_like() {
        let mut qcow2 = b"QFI\xfb\0\0\0\x03".to_vec();
        qcow2.resize(4096, 0);
        let said = text_of(qcow2, "disk.qcow2").err().map(|e| e.to_string());
        assert_eq!(
            said.as_deref(),
            Some(
                "disk.qcow2 is not a text file: it looks like a QCOW2 disk image; name it in a \
                 manifest, in diskDeviceMappings[].source.file"
            )
        );
        let said = text_of(b"caf\xe9".to_vec(), "latin1.yaml")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            said.as_deref(),
            Some("latin1.yaml is not a text file (it holds NUL bytes or is not UTF-8)")
        );
    }
}

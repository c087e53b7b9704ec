//! Just enough of the Kubernetes protobuf encoding to read the bodies `kubectl create namespace`,
//! `kubectl create secret` and `kubectl create configmap` send (kubectl's typed clients always
//! send protobuf for built-in kinds and do not fall back to JSON).

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\x00";

/// One decoded field: varints as numbers, length-delimited fields as bytes.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let bytes = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Field::Bytes(bytes)
            }
            5 => {
                pos += 4;
                Field::Fixed
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Kubernetes encodes `[]byte` in JSON.
pub(crate) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `map<string, string|bytes>` entry list into a JSON object.
fn map_entry(map: &mut Map<String, Value>, entry: &[u8], binary: bool) -> Option<()> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (number, field) in fields(entry)? {
        match (number, field) {
            (1, Field::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Field::Bytes(b)) if binary => value = Value::String(base64(b)),
            (2, Field::Bytes(b)) => value = text(b),
            _ => {}
        }
    }
    map.insert(key, value);
    Some(())
}

fn object_meta(buf: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (number, field) in fields(buf)? {
        let Field::Bytes(b) = field else { continue };
        if b.is_empty() {
            continue;
        }
        match number {
            1 => {
                meta.insert("name".into(), text(b));
            }
            2 => {
                meta.insert("generateName".into(), text(b));
            }
            3 => {
                meta.insert("namespace".into(), text(b));
            }
            11 => map_entry(&mut labels, b, false)?,
            12 => map_entry(&mut annotations, b, false)?,
            14 => finalizers.push(text(b)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(meta))
}

/// The kind-specific fields: `(field number, JSON name, is map, is bytes)`.
fn layout(kind: &str) -> &'static [(u64, &'static str, bool, bool)] {
    match kind {
        "Secret" => &[
            (2, "data", true, true),
            (3, "type", false, false),
            (4, "stringData", true, false),
        ],
        "ConfigMap" => &[(2, "data", true, false), (3, "binaryData", true, true)],
        _ => &[],
    }
}

fn decode(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(MAGIC)?;
    let (mut api_version, mut kind, mut raw) = (Value::Null, String::new(), None);
    for (number, field) in fields(unknown)? {
        match (number, field) {
            (1, Field::Bytes(type_meta)) => {
                for (n, f) in fields(type_meta)? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => api_version = text(b),
                        (2, Field::Bytes(b)) => kind = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let map = obj.as_object_mut()?;
    for (number, field) in fields(raw?)? {
        match (number, field) {
            (1, Field::Bytes(b)) => {
                map.insert("metadata".into(), object_meta(b)?);
            }
            (n, Field::Varint(v))
                if (kind.as_str(), n) == ("Secret", 5)
                    || (kind.as_str(), n) == ("ConfigMap", 4) =>
            {
                map.insert("immutable".into(), Value::Bool(v != 0));
            }
            (n, Field::Bytes(b)) => {
                let Some((_, name, is_map, binary)) = layout(&kind).iter().find(|l| l.0 == n)
                else {
                    continue;
                };
                if b.is_empty() {
                    continue;
                }
                if *is_map {
                    let entry = map.entry(*name).or_insert_with(|| json!({}));
                    if let Some(m) = entry.as_object_mut() {
                        map_entry(m, b, *binary)?;
                    }
                } else {
                    map.insert((*name).into(), text(b));
                }
            }
            _ => {}
        }
    }
    Some(obj)
}

/// Decodes a protobuf Namespace, Secret or ConfigMap into its JSON form.
pub(crate) fn to_json(body: &[u8]) -> Result<Value, ApiError> {
    decode(body).ok_or_else(|| {
        // Only these three kinds are decoded; JSON works for everything.
        ApiError::unsupported_media_type(&["application/json", "application/yaml"])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_go() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"x"), "eA==");
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"AKID"), "QUtJRA==");
    }

    #[test]
    fn decodes_a_namespace() {
        // Namespace{metadata{name: "ns1", labels{a: b}}} in an Unknown with TypeMeta{v1, Namespace}.
        let labels = [0x0a, 1, b'a', 0x12, 1, b'b'];
        let mut meta = vec![0x0a, 3, b'n', b's', b'1', 0x5a, labels.len() as u8];
        meta.extend_from_slice(&labels);
        let mut raw = vec![0x0a, meta.len() as u8];
        raw.extend_from_slice(&meta);
        let type_meta = [
            0x0a, 2, b'v', b'1', 0x12, 9, b'N', b'a', b'm', b'e', b's', b'p', b'a', b'c', b'e',
        ];
        let mut body = b"k8s\x00".to_vec();
        body.extend_from_slice(&[0x0a, type_meta.len() as u8]);
        body.extend_from_slice(&type_meta);
        body.extend_from_slice(&[0x12, raw.len() as u8]);
        body.extend_from_slice(&raw);
        assert_eq!(
            to_json(&body),
            Ok(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1", "labels": {"a": "b"}}})
            )
        );
    }
}

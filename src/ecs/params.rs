//! The RPC wire codec: parameter maps, flattening and percent-encoding.
//!
//! Everything that turns a typed request into the flat `Name.N.Field=value` map ECS expects, and that
//! turns such a map back into the canonical string a signature covers, lives here, so the client and
//! the emulator cannot disagree about it (the golden vectors keep both honest).

use std::collections::BTreeMap;
use std::fmt;

/// A flat, sorted map of RPC parameters.
///
/// `BTreeMap<String, _>` orders keys by their UTF-8 bytes, which is exactly the code-point order the
/// signature algorithm requires (`Tag.1.Key < Tag.10.Key < Tag.2.Key`, uppercase before lowercase).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

/// Parameters whose values are credentials and must never be printed.
const SECRET_PARAMETERS: &[&str] = &["SecurityToken", "Signature", "OIDCToken"];

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.0 {
            if SECRET_PARAMETERS.contains(&key.as_str()) {
                map.entry(key, &"<redacted>");
            } else {
                map.entry(key, value);
            }
        }
        map.finish()
    }
}

impl Params {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one parameter, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// Sets a parameter only when there is a value; optional fields are left off the wire entirely.
    pub fn set_opt<V: ToString>(&mut self, name: &str, value: Option<V>) {
        if let Some(value) = value {
            self.set(name, value.to_string());
        }
    }

    /// Sets a boolean the way ECS wants it: lowercase `true` / `false`.
    pub fn set_bool(&mut self, name: &str, value: bool) {
        self.set(name, if value { "true" } else { "false" });
    }

    /// Flattens a list of structs as `Name.N.Field`, N from 1; absent fields are skipped.
    pub fn set_struct_list<'a, I>(&mut self, name: &str, items: I)
    where
        I: IntoIterator<Item = Vec<(&'a str, Option<String>)>>,
    {
        for (index, fields) in items.into_iter().enumerate() {
            for (field, value) in fields {
                self.set_opt(&format!("{name}.{}.{field}", index + 1), value);
            }
        }
    }

    /// Flattens a list of plain strings as `Name.N`, N from 1.
    pub fn set_string_list<I, S>(&mut self, name: &str, items: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for (index, item) in items.into_iter().enumerate() {
            self.set(format!("{name}.{}", index + 1), item);
        }
    }

    /// Flattens one struct as `Name.Field`; absent fields are skipped.
    pub fn set_struct<'a, I>(&mut self, name: &str, fields: I)
    where
        I: IntoIterator<Item = (&'a str, Option<String>)>,
    {
        for (field, value) in fields {
            self.set_opt(&format!("{name}.{field}"), value);
        }
    }

    /// The value of one parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Removes one parameter and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Whether a parameter is present (an empty value counts as present).
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// All parameters in signing order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The V1 `CanonicalizedQueryString`: every parameter except `Signature`, sorted, percent-encoded.
    ///
    /// Empty values are kept (`SignatureType=`): the Python SDK signs one, so a verifier must too.
    pub fn canonicalized_query(&self) -> String {
        self.encoded_pairs(|name| name != "Signature")
    }

    /// The whole map as an `application/x-www-form-urlencoded` body (or query string).
    ///
    /// RFC 3986 encoding is a valid form encoding, so what goes on the wire matches what is signed.
    pub fn to_form(&self) -> String {
        self.encoded_pairs(|_| true)
    }

    fn encoded_pairs(&self, keep: impl Fn(&str) -> bool) -> String {
        let mut out = String::new();
        for (name, value) in self.0.iter().filter(|(name, _)| keep(name)) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&percent_encode(name));
            out.push('=');
            out.push_str(&percent_encode(value));
        }
        out
    }

    /// Parses a query string or form body, adding to what is already here.
    ///
    /// Form decoding: `+` means space (the Tea SDK sends spaces that way and signs them as `%20`).
    /// A parameter given twice keeps the last value, as Alibaba's gateway does.
    pub fn extend_from_form(&mut self, form: &str) -> Result<(), DecodeError> {
        for pair in form.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.set(form_decode(name)?, form_decode(value)?);
        }
        Ok(())
    }

    /// Parses a query string or form body into a new map.
    pub fn from_form(form: &str) -> Result<Self, DecodeError> {
        let mut params = Self::new();
        params.extend_from_form(form)?;
        Ok(params)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// A query string or form body that is not valid percent-encoded UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape in request parameters")]
    BadEscape,
    /// The decoded bytes are not UTF-8.
    #[error("request parameters are not valid UTF-8")]
    NotUtf8,
}

/// Percent-encodes per RFC 3986 with uppercase hex: only `A-Z a-z 0-9 - _ . ~` stay literal.
///
/// This is the single encoder of the project: ECS signs space as `%20` (never `+`), `*` as `%2A`
/// and leaves `~` alone, which neither form encoders nor most URL encoders do by default.
pub fn percent_encode(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &byte in input.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0F)]));
        }
    }
    out
}

/// Decodes one form-encoded component: `%XY` escapes and `+` as space.
pub fn form_decode(input: &str) -> Result<String, DecodeError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                // Two hex digits exactly: `u8::from_str_radix` would also take a sign (`%+A`).
                let (high, low) = match bytes.get(i + 1..i + 3) {
                    Some(&[high, low]) => (hex_digit(high)?, hex_digit(low)?),
                    _ => return Err(DecodeError::BadEscape),
                };
                out.push(high << 4 | low);
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_digit(byte: u8) -> Result<u8, DecodeError> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
        .ok_or(DecodeError::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_reserved_characters_the_way_ecs_signs_them() {
        assert_eq!(
            percent_encode("a b*c~d/e+f=g&h:i,j(k)l!m'n#o%"),
            "a%20b%2Ac~d%2Fe%2Bf%3Dg%26h%3Ai%2Cj%28k%29l%21m%27n%23o%25"
        );
        assert_eq!(percent_encode("テ"), "%E3%83%86");
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
    }

    #[test]
    fn form_decoding_reads_plus_as_space_and_rejects_bad_escapes() {
        assert_eq!(form_decode("a+b%2Bc%20d").as_deref(), Ok("a b+c d"));
        assert_eq!(form_decode("%E3%83%86").as_deref(), Ok("テ"));
        assert_eq!(form_decode("%G1"), Err(DecodeError::BadEscape));
        assert_eq!(form_decode("%4"), Err(DecodeError::BadEscape));
        assert_eq!(form_decode("%+A"), Err(DecodeError::BadEscape));
        assert_eq!(form_decode("%FF"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn sorts_keys_bytewise_so_dot_sorts_before_digits() {
        let mut params = Params::new();
        for key in [
            "Tag.2.Key",
            "Tag.10.Key",
            "Tag.1.Value",
            "Tag.1.Key",
            "a",
            "B",
        ] {
            params.set(key, "x");
        }
        let keys: Vec<&str> = params.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "B",
                "Tag.1.Key",
                "Tag.1.Value",
                "Tag.10.Key",
                "Tag.2.Key",
                "a"
            ]
        );
    }

    #[test]
    fn flattens_lists_and_structs_and_skips_absent_fields() {
        let mut params = Params::new();
        params.set_struct_list(
            "DiskDeviceMapping",
            vec![
                vec![("OSSBucket", Some("b".to_string())), ("Format", None)],
                vec![("OSSBucket", Some("c".to_string()))],
            ],
        );
        params.set_string_list("ResourceIds", ["m-1", "m-2"]);
        params.set_struct(
            "Features",
            [
                ("NvmeSupport", Some("supported".to_string())),
                ("ImdsSupport", None),
            ],
        );
        params.set_bool("DryRun", true);
        assert_eq!(
            params.to_form(),
            "DiskDeviceMapping.1.OSSBucket=b&DiskDeviceMapping.2.OSSBucket=c&DryRun=true&\
             Features.NvmeSupport=supported&ResourceIds.1=m-1&ResourceIds.2=m-2"
        );
    }

    #[test]
    fn round_trips_through_the_form_encoding_and_keeps_empty_values() {
        let mut params = Params::new();
        params.set("Description", "テスト *~ 100% & a=b+c/d !'");
        params.set("SignatureType", "");
        let parsed = Params::from_form(&params.to_form());
        assert_eq!(parsed, Ok(params));
    }

    #[test]
    fn debug_output_hides_credentials() {
        let mut params = Params::new();
        params.set("SecurityToken", "CAIS-very-secret");
        params.set("Signature", "sig-secret");
        params.set("RegionId", "cn-hangzhou");
        let shown = format!("{params:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("sig-secret"),
            "{shown}"
        );
        assert!(shown.contains("cn-hangzhou"));
    }
}

//! What may be shown of a text ECS (or STS, or the metadata service) sent back.
//!
//! This is the only module that knows the shapes of ECS's messages. Every ECS-derived text that
//! can reach status, conditions, Events, logs, metrics or the CLI goes through [`shown_message`],
//! [`shown_text`] or [`shown_code`] where the ECS layer builds its errors, so nothing downstream
//! ever holds the raw text:
//!
//! - ECS answers a bad signature with its own string to sign (`… server string to sign
//!   is:POST&%2F&AccessKeyId%3D…%26SecurityToken%3D…`): everything from `server string to sign`
//!   on is cut, whatever the case.
//! - Every credential value the request carried ([`Secrets`]: AccessKeySecret, SecurityToken,
//!   Signature, an OIDC token, a V3 `Authorization` value) is replaced by [`REDACTED`] wherever it
//!   appears: raw, percent-encoded once or twice (RFC 3986, lower- or uppercase hex), form-encoded
//!   (`+` for space) once or twice, or JSON-escaped.
//! - Lengths are bounded: messages to [`MAX_MESSAGE_CHARS`] characters, other fields (request
//!   ID, host, diagnosis URL) to [`MAX_FIELD_CHARS`], each ending in [`CUT_MARKER`] when cut, on
//!   a character boundary; codes to [`MAX_CODE_LEN`] bytes of `A-Z a-z 0-9 . _ -`, else
//!   [`UNUSABLE_CODE`].

use std::borrow::Cow;
use std::fmt;

/// What replaces a credential value.
pub const REDACTED: &str = "[redacted]";

/// What ends a text that was cut to its bound.
pub const CUT_MARKER: &str = "… [cut]";

/// Longest shown message, in characters, marker included: a status message, a condition message
/// and an Event note stay readable (Kubernetes allows 32 KiB for a condition message and 1 KiB
/// for an Event note), and no ECS message we know of is longer than a few hundred characters.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// Longest shown request ID, host ID or diagnosis URL, in characters, marker included (ECS's are
/// under 100).
pub const MAX_FIELD_CHARS: usize = 256;

/// Longest usable error code, in bytes: ECS's longest documented code is under 50.
pub const MAX_CODE_LEN: usize = 64;

/// The code that stands in for one ECS sent that is too long, empty or has characters no ECS code
/// has: codes become metric labels and condition reasons, which must stay short and few.
pub const UNUSABLE_CODE: &str = "UnusableErrorCode";

/// What the shown message of a wrong-secret answer says (ECS's own message then says nothing
/// useful, once its string to sign is cut).
pub const WRONG_SECRET_HINT: &str =
    "check the AccessKeySecret: accessKeySecret in the credentials Secret";

/// The codes ECS answers a signature made with the wrong AccessKeySecret with.
pub const WRONG_SECRET_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeySecret",
];

/// Where ECS starts quoting its string to sign (V1 and V3 alike), lowercase.
const STRING_TO_SIGN_MARKERS: &[&str] = &["server string to sign", "string to sign is"];

/// Credential values a request carried, which no shown text may contain in any encoding.
///
/// Holds every encoded form of each value, ASCII-lowercased, so matching is one case-insensitive
/// search per form. `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Secrets {
    forms: Vec<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} forms)", self.forms.len())
    }
}

impl Secrets {
    /// No known values: texts are still cut, cleaned and bounded.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds one value (empty values are ignored: there is nothing to hide).
    pub fn add(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        let json = json_escaped(value);
        let mut candidates = vec![value.to_string(), json.replace('/', "\\/"), json];
        // Encoders disagree on three characters only: space (`%20` or `+`), `*` and `~` (literal
        // or escaped); every combination, once and twice (hex case is matched case-blind).
        let once: Vec<String> = Encoding::all_for(value).map(|e| e.encode(value)).collect();
        for first in &once {
            for encoding in Encoding::all_for(first) {
                candidates.push(encoding.encode(first));
            }
        }
        candidates.extend(once);
        for candidate in candidates {
            let lowered = candidate.to_ascii_lowercase();
            if !self.forms.contains(&lowered) {
                self.forms.push(lowered);
            }
        }
        // Longest first: a form that contains another is replaced whole, not around a marker.
        self.forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    }

    /// The secret values of a set of credentials: the AccessKeySecret and the security token.
    pub fn of(credentials: &super::Credentials) -> Self {
        let mut secrets = Self::none().with(credentials.access_key_secret());
        if let Some(token) = credentials.security_token() {
            secrets.add(token);
        }
        secrets
    }

    /// Adds one value, builder style.
    pub fn with(mut self, value: &str) -> Self {
        self.add(value);
        self
    }

    /// Whether no value is known.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Whether `text` contains any form of any value.
    pub fn occur_in(&self, text: &str) -> bool {
        if self.forms.is_empty() {
            return false;
        }
        let lowered = text.to_ascii_lowercase();
        self.forms
            .iter()
            .any(|form| lowered.contains(form.as_str()))
    }
}

/// Replaces every form of every value in `secrets` by [`REDACTED`]; nothing else changes.
///
/// For whole bodies (a successful answer is decoded after this). Matches are found on the
/// original text, merged and replaced in one pass, then the result is checked again, since a
/// value could in theory be formed around a marker; a text that still holds one after a few
/// rounds is replaced whole.
pub fn remove_secrets<'a>(text: &'a str, secrets: &Secrets) -> Cow<'a, str> {
    if !secrets.occur_in(text) {
        return Cow::Borrowed(text);
    }
    let mut current = text.to_string();
    for _ in 0..4 {
        current = replace_once(&current, secrets);
        if !secrets.occur_in(&current) {
            return Cow::Owned(current);
        }
    }
    Cow::Owned(REDACTED.to_string())
}

fn replace_once(text: &str, secrets: &Secrets) -> String {
    let lowered = text.to_ascii_lowercase();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for form in &secrets.forms {
        let mut from = 0;
        while let Some(found) = lowered[from..].find(form.as_str()) {
            let start = from + found;
            ranges.push((start, start + form.len()));
            // Next search one character on, so overlapping occurrences are all found.
            from = start + lowered[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    // `at` is where the text not yet copied starts: the end of the last (merged) match.
    let mut at = 0;
    for (start, end) in ranges {
        if start < at {
            at = at.max(end);
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The text without secrets and without ECS's string to sign; unbounded. Everything else is kept
/// as ECS wrote it (line ends included: a message may echo user input, and is shown exactly).
pub fn redact(text: &str, secrets: &Secrets) -> String {
    // Secrets first: a value containing the marker phrase must not be cut in half and leave a prefix.
    let clean = remove_secrets(text, secrets);
    let lowered = clean.to_ascii_lowercase();
    let cut_at = STRING_TO_SIGN_MARKERS
        .iter()
        .filter_map(|marker| lowered.find(marker))
        .min();
    match cut_at {
        Some(at) => clean[..at].trim_end().to_string(),
        None => clean.into_owned(),
    }
}

/// Cuts `text` to at most `max_chars` characters, [`CUT_MARKER`] included, on a character boundary.
pub fn bound(text: &str, max_chars: usize) -> String {
    let marker_chars = CUT_MARKER.chars().count();
    let Some((limit, _)) = text.char_indices().nth(max_chars) else {
        return text.to_string();
    };
    let keep = max_chars.saturating_sub(marker_chars);
    let end = text.char_indices().nth(keep).map_or(limit, |(at, _)| at);
    let mut out = String::with_capacity(end + CUT_MARKER.len());
    out.push_str(&text[..end]);
    out.push_str(CUT_MARKER);
    out
}

/// What may be shown of any ECS-derived text: [`redact`]ed and [`bound`]ed to `max_chars`.
pub fn shown_text(text: &str, secrets: &Secrets, max_chars: usize) -> String {
    bound(&redact(text, secrets), max_chars)
}

/// What may be shown of an ECS error message for `code` (the code as ECS sent it).
///
/// [`redact`]ed, with [`WRONG_SECRET_HINT`] for the wrong-secret codes, and at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub fn shown_message(code: &str, message: &str, secrets: &Secrets) -> String {
    let clean = redact(message, secrets);
    if !WRONG_SECRET_CODES.contains(&code) {
        return bound(&clean, MAX_MESSAGE_CHARS);
    }
    let suffix = format!(" ({WRONG_SECRET_HINT})");
    let room = MAX_MESSAGE_CHARS - suffix.chars().count();
    let head = bound(clean.trim_end(), room);
    let shown = if head.is_empty() {
        WRONG_SECRET_HINT.to_string()
    } else {
        format!("{head}{suffix}")
    };
    // A secret completed by the hint's text is far-fetched but cheap to rule out; the marker may be
    // longer than what it replaces, so the result is bounded again.
    bound(&remove_secrets(&shown, secrets), MAX_MESSAGE_CHARS)
}

/// Whether `code` is usable as an error code, a metric label and a reason: 1 to
/// [`MAX_CODE_LEN`] bytes of `A-Z a-z 0-9 . _ -`.
pub fn is_usable_code(code: &str) -> bool {
    (1..=MAX_CODE_LEN).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The code to keep for one ECS sent: itself when usable and free of secrets, else
/// [`UNUSABLE_CODE`] (with the code's shown form in `Err`, for the message).
pub fn shown_code(code: &str, secrets: &Secrets) -> Result<String, String> {
    if is_usable_code(code) && !secrets.occur_in(code) {
        Ok(code.to_string())
    } else {
        Err(shown_text(code, secrets, MAX_CODE_LEN))
    }
}

/// A transport error whose URL (shown by its `Display` and `Debug`) has no user name, password,
/// query or fragment.
///
/// The client sends credentials in a POST form body, never in the URL, and endpoint overrides may
/// not carry a query; but an override may carry `user:password@`, which is no business of a log.
pub fn scrub_transport(mut error: reqwest::Error) -> reqwest::Error {
    if let Some(url) = error.url_mut() {
        // Both fail only for URLs that cannot have credentials (`data:`), which have none to hide.
        let _ = url.set_password(None);
        let _ = url.set_username("");
        url.set_query(None);
        url.set_fragment(None);
    }
    error
}

/// One way of percent-encoding: RFC 3986 as [`super::params::percent_encode`] writes it (the
/// wire form), or a form encoder's variation of it.
#[derive(Clone, Copy)]
struct Encoding {
    plus_for_space: bool,
    literal_star: bool,
    literal_tilde: bool,
}

/// Every combination of the three points where encoders differ.
const ENCODINGS: [Encoding; 8] = {
    let mut all = [Encoding {
        plus_for_space: false,
        literal_star: false,
        literal_tilde: true,
    }; 8];
    let mut i = 0;
    while i < 8 {
        all[i] = Encoding {
            plus_for_space: i & 1 != 0,
            literal_star: i & 2 != 0,
            literal_tilde: i & 4 == 0,
        };
        i += 1;
    }
    all
};

impl Encoding {
    /// The encodings that differ on `text`: a variation on a character it lacks changes nothing
    /// (so a value without space, `*` and `~`, the usual case, has one).
    fn all_for(text: &str) -> impl Iterator<Item = Self> + '_ {
        let (space, star, tilde) = (text.contains(' '), text.contains('*'), text.contains('~'));
        ENCODINGS.into_iter().filter(move |e| {
            (space || !e.plus_for_space) && (star || !e.literal_star) && (tilde || e.literal_tilde)
        })
    }

    fn encode(self, input: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut out = String::with_capacity(input.len());
        for &byte in input.as_bytes() {
            let literal = byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'_' | b'.')
                || (byte == b'*' && self.literal_star)
                || (byte == b'~' && self.literal_tilde);
            if literal {
                out.push(char::from(byte));
            } else if byte == b' ' && self.plus_for_space {
                out.push('+');
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0F)]));
            }
        }
        out
    }
}

/// The value as it appears inside a JSON string (without the quotes).
fn json_escaped(input: &str) -> String {
    let quoted = serde_json::Value::String(input.to_string()).to_string();
    quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_MISMATCH: &str = "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3DSTS.key%26SecurityToken%3DCAIS%252Btok%252Fen%253D%253D";

    #[test]
    fn the_string_to_sign_is_cut_and_the_secret_hint_added() {
        let shown = shown_message("SignatureDoesNotMatch", V1_MISMATCH, &Secrets::none());
        assert_eq!(
            shown,
            format!(
                "Specified signature is not matched with our calculation. ({WRONG_SECRET_HINT})"
            )
        );
        let upper = V1_MISMATCH.to_uppercase();
        assert!(!shown_message("X", &upper, &Secrets::none()).contains("POST"));
    }

    #[test]
    fn every_form_of_a_secret_is_replaced() {
        let secret = "CAIS+tok/en== x*";
        let secrets = Secrets::none().with(secret);
        let once = super::super::params::percent_encode(secret);
        let twice = super::super::params::percent_encode(&once);
        for form in [
            secret.to_string(),
            once.clone(),
            twice,
            once.to_lowercase(),
            once.replace("%20", "+"),
            json_escaped(secret).replace('/', "\\/"),
        ] {
            let text = format!("before {form} after");
            let shown = redact(&text, &secrets);
            assert_eq!(shown, format!("before {REDACTED} after"), "{form}");
        }
    }

    #[test]
    fn overlapping_occurrences_leave_nothing() {
        let secrets = Secrets::none().with("abab");
        let shown = redact("xabababx", &secrets);
        assert!(!shown.contains("abab"), "{shown}");
        assert!(!secrets.occur_in(&shown));
    }

    #[test]
    fn bounds_count_characters_and_end_with_the_marker() {
        assert_eq!(bound("short", 10), "short");
        let long = "テ".repeat(2000);
        let cut = bound(&long, MAX_MESSAGE_CHARS);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with(CUT_MARKER));
    }

    #[test]
    fn codes_are_checked() {
        assert_eq!(
            shown_code("InvalidOSSObject.NotFound", &Secrets::none()),
            Ok("InvalidOSSObject.NotFound".into())
        );
        assert!(shown_code(&"A".repeat(65), &Secrets::none()).is_err());
        assert!(shown_code("bad code", &Secrets::none()).is_err());
        assert!(shown_code("", &Secrets::none()).is_err());
        let secrets = Secrets::none().with("Secret123");
        assert_eq!(
            shown_code("xSecret123", &secrets),
            Err(format!("x{REDACTED}"))
        );
    }
}

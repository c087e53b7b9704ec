//! How an error reads to a person: the error, then each cause the message does not already say.
//!
//! Many error types print their source inside their own message (`failed to read FILE: {source}`)
//! so that a log line or a status message built from `Display` alone is whole; printing the chain
//! of sources after such a message would say the cause twice. [`explain`] walks the chain and
//! adds only what is new.

use std::error::Error;

/// The error and every cause not already in the text: the whole explanation, each part once.
pub fn explain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The first fragment (text between `": "` separators, at least 8 characters) that appears more
/// than once in `message`, if any: a message that says its cause twice.
pub fn repeated_fragment(message: &str) -> Option<&str> {
    message
        .split(": ")
        .map(str::trim)
        .filter(|fragment| fragment.len() >= 8)
        .find(|fragment| message.matches(*fragment).count() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to read /x: {source}")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the manifest could not be used")]
    struct Plain {
        #[source]
        source: std::io::Error,
    }

    fn missing() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
    }

    #[test]
    fn a_cause_the_message_already_holds_is_said_once() {
        let text = explain(&Outer { source: missing() });
        assert_eq!(text, "failed to read /x: No such file or directory");
        assert_eq!(repeated_fragment(&text), None);
    }

    #[test]
    fn a_cause_the_message_leaves_out_is_added() {
        let text = explain(&Plain { source: missing() });
        assert_eq!(
            text,
            "the manifest could not be used: No such file or directory"
        );
    }

    #[test]
    fn a_doubled_cause_is_found() {
        let doubled = "failed to read /x: No such file (os error 2): No such file (os error 2)";
        assert_eq!(
            repeated_fragment(doubled),
            Some("No such file (os error 2)")
        );
    }
}

//! Response bodies in the two shapes ECS speaks: JSON (`Format=JSON`, V3) and XML (`Format=XML`,
//! the V1 default).
//!
//! An answer is built once as a [`Node`] tree and written either way, so both shapes always
//! carry the same data: `{"TaskSet":{"Task":[…]}}` in JSON is `<TaskSet><Task>…</Task></TaskSet>`
//! in XML.

use std::fmt::Write as _;

/// A value in an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean (JSON `true`, XML `true`).
    Bool(bool),
    /// An object with fields in order.
    Obj(Vec<(&'static str, Node)>),
    /// ECS's wrapped list: JSON `{"<item>":[…]}`, XML `<item>…</item>` repeated.
    Set(&'static str, Vec<Node>),
}

impl Node {
    /// A string node.
    pub fn s(value: impl Into<String>) -> Self {
        Self::Str(value.into())
    }

    /// An integer node.
    pub fn i(value: impl TryInto<i64>) -> Self {
        Self::Int(value.try_into().unwrap_or(i64::MAX))
    }
}

/// The shape of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `text/xml`.
    Xml,
}

impl Format {
    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json;charset=utf-8",
            Self::Xml => "text/xml;charset=utf-8",
        }
    }
}

/// Writes a whole answer; `root` names the XML root element (`<ImportImageResponse>`, `<Error>`).
pub fn render(format: Format, root: &str, fields: &[(&'static str, Node)]) -> String {
    let mut out = String::with_capacity(256);
    match format {
        Format::Json => json_object(&mut out, fields),
        Format::Xml => {
            out.push_str("<?xml version='1.0' encoding='UTF-8'?>");
            xml_element(&mut out, root, &Node::Obj(fields.to_vec()));
        }
    }
    out
}

fn json_object(out: &mut String, fields: &[(&'static str, Node)]) {
    out.push('{');
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        json_string(out, name);
        out.push(':');
        json_value(out, value);
    }
    out.push('}');
}

fn json_value(out: &mut String, node: &Node) {
    match node {
        Node::Str(text) => json_string(out, text),
        Node::Int(number) => {
            let _ = write!(out, "{number}");
        }
        Node::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
        Node::Obj(fields) => json_object(out, fields),
        Node::Set(item, items) => {
            out.push('{');
            json_string(out, item);
            out.push_str(":[");
            for (index, value) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                json_value(out, value);
            }
            out.push_str("]}");
        }
    }
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn xml_element(out: &mut String, name: &str, node: &Node) {
    match node {
        Node::Set(item, items) => {
            let _ = write!(out, "<{name}>");
            for value in items {
                xml_element(out, item, value);
            }
            let _ = write!(out, "</{name}>");
        }
        Node::Obj(fields) => {
            let _ = write!(out, "<{name}>");
            for (field, value) in fields {
                xml_element(out, field, value);
            }
            let _ = write!(out, "</{name}>");
        }
        Node::Str(text) => {
            let _ = write!(out, "<{name}>");
            xml_text(out, text);
            let _ = write!(out, "</{name}>");
        }
        Node::Int(number) => {
            let _ = write!(out, "<{name}>{number}</{name}>");
        }
        Node::Bool(value) => {
            let _ = write!(out, "<{name}>{value}</{name}>");
        }
    }
}

pub(crate) fn xml_text(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Line ends a parser would normalize to `\n` (XML 1.0 `\r`, XML 1.1 NEL and LS)
            // are written as references, so they read back as sent.
            '\r' | '\u{85}' | '\u{2028}' => {
                let _ = write!(out, "&#{};", u32::from(ch));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(&'static str, Node)> {
        vec![
            ("RequestId", Node::s("R-1")),
            ("TotalCount", Node::i(1)),
            (
                "TaskSet",
                Node::Set(
                    "Task",
                    vec![Node::Obj(vec![
                        ("TaskId", Node::s("t-1")),
                        ("SupportCancel", Node::s("true")),
                    ])],
                ),
            ),
            ("Note", Node::s("a<b & \"c\"\n")),
        ]
    }

    #[test]
    fn json_wraps_lists_the_way_the_sdk_models_expect() {
        assert_eq!(
            render(Format::Json, "X", &sample()),
            r#"{"RequestId":"R-1","TotalCount":1,"TaskSet":{"Task":[{"TaskId":"t-1","SupportCancel":"true"}]},"Note":"a<b & \"c\"\n"}"#
        );
    }

    #[test]
    fn xml_repeats_list_items_inside_the_set_element() {
        assert_eq!(
            render(Format::Xml, "DescribeTasksResponse", &sample()),
            "<?xml version='1.0' encoding='UTF-8'?><DescribeTasksResponse><RequestId>R-1</RequestId>\
             <TotalCount>1</TotalCount><TaskSet><Task><TaskId>t-1</TaskId><SupportCancel>true</SupportCancel>\
             </Task></TaskSet><Note>a&lt;b &amp; &quot;c&quot;\n</Note></DescribeTasksResponse>"
        );
    }
}

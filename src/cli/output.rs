//! How the `ecs` subcommands print an answer: `--output table|json|yaml`, a table by default on a
//! terminal and JSON otherwise (what scripts read).
//!
//! The table is built from the answer's JSON: the first list of objects in it (the images, the
//! tasks, the regions) becomes the rows, its fields holding plain values the columns; an answer
//! without such a list prints its plain fields one per line.

use std::io::IsTerminal;

use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;

/// How an answer is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// The whole answer, pretty-printed JSON.
    Json,
    /// The whole answer as YAML.
    Yaml,
}

impl OutputFormat {
    /// The format asked for, else a table on a terminal and JSON elsewhere.
    pub fn or_default(asked: Option<Self>) -> Self {
        asked.unwrap_or_else(|| match std::io::stdout().is_terminal() {
            true => Self::Table,
            false => Self::Json,
        })
    }
}

/// Columns a table shows at most: the rest is in `--output json`.
const MAX_COLUMNS: usize = 8;

/// `value` in `format`.
pub fn render(value: &impl Serialize, format: OutputFormat) -> Result<String, String> {
    let value = serde_json::to_value(value).map_err(|error| error.to_string())?;
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(&value)
            .map(|text| text + "\n")
            .map_err(|error| error.to_string()),
        OutputFormat::Yaml => serde_saphyr::to_string(&value).map_err(|error| error.to_string()),
        OutputFormat::Table => Ok(table(&value)),
    }
}

/// The table of an answer (see the module doc).
pub fn table(value: &Value) -> String {
    let Some(rows) = first_rows(value) else {
        return plain_fields(value)
            .into_iter()
            .map(|(key, text)| format!("{key}: {text}\n"))
            .collect();
    };
    let Some(first) = rows.first() else {
        return "(none)\n".to_string();
    };
    // IDs, names, statuses and progress first; columns empty in every row left out.
    let mut columns: Vec<String> = plain_fields(first)
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key != "RequestId")
        .filter(|key| rows.iter().any(|row| !plain(row.get(key)).is_empty()))
        .collect();
    columns.sort_by_key(|key| rank(key));
    columns.truncate(MAX_COLUMNS);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| plain(row.get(c))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|row| row[i].chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(&columns);
    for row in &cells {
        text.push_str(&line(row));
    }
    text
}

/// Where a column goes: IDs, then names, statuses, progress, the rest, times last.
fn rank(key: &str) -> u8 {
    if key.ends_with("Id") {
        0
    } else if key.ends_with("Name") {
        1
    } else if key.ends_with("Status") {
        2
    } else if key.contains("Progress") || key.contains("Process") {
        3
    } else if key.ends_with("Time") {
        5
    } else {
        4
    }
}

/// The first list of objects in `value`, looking at its fields in order, then inside them.
fn first_rows(value: &Value) -> Option<&Vec<Value>> {
    match value {
        Value::Array(items) if items.first().is_some_and(Value::is_object) => Some(items),
        Value::Array(items) if items.is_empty() => Some(items),
        Value::Object(fields) => fields.values().find_map(first_rows),
        _ => None,
    }
}

/// The fields of an object that hold plain values (text, numbers, booleans), as text.
fn plain_fields(value: &Value) -> Vec<(String, String)> {
    match value {
        Value::Object(fields) => fields
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
            .map(|(key, v)| (key.clone(), plain(Some(v))))
            .collect(),
        _ => Vec::new(),
    }
}

fn plain(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_objects_becomes_aligned_rows_of_its_plain_fields() {
        let answer = serde_json::json!({
            "RequestId": "r-1",
            "Images": [
                {"Status": "Available", "ImageId": "m-1", "Note": "", "Tags": [{"Key": "k"}]},
                {"Status": "Creating", "ImageId": "m-22", "Note": "", "Tags": []},
            ],
        });
        assert_eq!(
            table(&answer),
            "ImageId  Status\nm-1      Available\nm-22     Creating\n"
        );
    }

    #[test]
    fn an_answer_without_a_list_prints_its_fields() {
        let answer = serde_json::json!({"outcome": "Deleted", "ImageId": "m-1"});
        assert_eq!(table(&answer), "ImageId: m-1\noutcome: Deleted\n");
    }

    #[test]
    fn yaml_and_json_carry_the_whole_answer() {
        let answer = serde_json::json!({"Images": [{"ImageId": "m-1", "Tags": [{"Key": "k"}]}]});
        let yaml = render(&answer, OutputFormat::Yaml).unwrap_or_default();
        assert!(yaml.contains("Key: k"), "{yaml}");
        let json = render(&answer, OutputFormat::Json).unwrap_or_default();
        assert!(json.contains("\"Key\": \"k\""), "{json}");
    }
}

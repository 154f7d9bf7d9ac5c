//! A small YAML writer for `hm export`: block style, every string plain
//! only where no YAML reader (1.1 or 1.2) could take it for anything else,
//! double-quoted otherwise; texts of several lines as literal blocks where
//! one holds them exactly. docs/decisions.md ("Export to CI engines") says
//! why it is written here rather than taken from a crate.

/// A YAML value as `hm export` writes it.
pub(super) enum Yaml {
    Str(String),
    /// A text of several lines: a literal block (`|`) where YAML can hold
    /// it exactly, else a quoted string.
    Text(String),
    Int(u64),
    Bool(bool),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub(super) fn str(text: impl AsRef<str>) -> Yaml {
        Yaml::Str(text.as_ref().to_owned())
    }

    pub(super) fn map<K: AsRef<str>>(entries: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
        Yaml::Map(entries.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v)).collect())
    }

    /// The value on one line, or `None` for a block (non-empty collections,
    /// texts written as literal blocks).
    fn inline(&self) -> Option<String> {
        match self {
            Yaml::Str(s) => Some(scalar(s)),
            Yaml::Text(t) if literal_block(t).is_none() => Some(quoted(t)),
            Yaml::Int(n) => Some(n.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Seq(items) if items.is_empty() => Some("[]".to_owned()),
            Yaml::Map(entries) if entries.is_empty() => Some("{}".to_owned()),
            _ => None,
        }
    }
}

/// The document: `header` as comment lines, then `doc` (a mapping).
pub(super) fn render(header: &[String], doc: &Yaml) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str(&format!("# {line}\n"));
    }
    if let Yaml::Map(entries) = doc {
        write_map(entries, 0, false, &mut out);
    }
    out
}

/// Writes what follows a `key:` or a `-` (its indent: `indent`).
fn write_value(value: &Yaml, indent: usize, out: &mut String) {
    if let Some(text) = value.inline() {
        out.push(' ');
        out.push_str(&text);
        out.push('\n');
        return;
    }
    match value {
        Yaml::Map(entries) => {
            out.push('\n');
            write_map(entries, indent + 2, false, out);
        }
        Yaml::Seq(items) => {
            out.push('\n');
            write_seq(items, indent + 2, out);
        }
        Yaml::Text(text) => {
            let (indicator, body) = literal_block(text).expect("inline() took the rest");
            out.push(' ');
            out.push_str(indicator);
            out.push('\n');
            for line in body.split('\n') {
                if !line.is_empty() {
                    out.push_str(&" ".repeat(indent + 2));
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        _ => unreachable!("scalars are inline"),
    }
}

/// `first_inline`: the first entry continues a `- ` already written.
fn write_map(entries: &[(String, Yaml)], indent: usize, first_inline: bool, out: &mut String) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 || !first_inline {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar(key));
        out.push(':');
        write_value(value, indent, out);
    }
}

fn write_seq(items: &[Yaml], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Yaml::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                write_map(entries, indent + 2, true, out);
            }
            item => write_value(item, indent, out),
        }
    }
}

/// Words YAML 1.1 or 1.2 reads as something other than a string.
const NOT_STRINGS: [&str; 9] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// A string as a scalar: plain when it is a simple word that every YAML
/// reader takes as that string, else double-quoted.
fn scalar(text: &str) -> String {
    let simple = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '/')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-./@".contains(c))
        && !NOT_STRINGS.contains(&text.to_ascii_lowercase().as_str());
    match simple {
        true => text.to_owned(),
        false => quoted(text),
    }
}

/// Whether YAML must escape `c` in a double-quoted string: control
/// characters, line and paragraph separators (line breaks in YAML 1.1),
/// the byte order mark and the non-characters YAML excludes.
fn escaped(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}')
}

/// A double-quoted scalar, read the same by YAML 1.1 and 1.2.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The indicator and the lines of `text` as a literal block, where one
/// holds it exactly: lines with no leading space on the first, no trailing
/// spaces, nothing that needs escaping, and at most one final newline.
fn literal_block(text: &str) -> Option<(&'static str, &str)> {
    let (indicator, body) = match text.strip_suffix('\n') {
        Some(body) => ("|", body),
        None => ("|-", text),
    };
    let fits = !body.is_empty()
        && !body.starts_with([' ', '\n'])
        && !body.ends_with('\n')
        && !body.chars().any(|c| c != '\n' && (c == '\t' || escaped(c)))
        && body.split('\n').all(|line| !line.ends_with(' '));
    fits.then_some((indicator, body))
}

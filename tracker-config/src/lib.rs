//! Config-file plumbing shared by `tracker-user` and `tracker-load`: both
//! print their defaults as commented TOML (`-p`) and report a bad file by
//! line, column and key path. Each crate keeps its own structs; the comments
//! come from their doc comments through `#[derive(ConfigDocs)]` (see
//! `tracker_config_derive` for the recipe), or from a hand-kept table of
//! comments for a module not converted yet. This crate only walks them.
#![forbid(unsafe_code)]

use std::borrow::Cow;

pub use tracker_config_derive::ConfigDocs;

// The derive names `::tracker_config`; this lets this crate's own tests use it.
extern crate self as tracker_config;

/// A comment for each dotted key path (`"section"`, `"section.key"`), in
/// the order the keys are printed.
pub type Comments = [(&'static str, &'static str)];

/// A dotted key path and its comment.
pub type KeyDoc = (String, Cow<'static, str>);

/// The comments of a config struct's keys, from its doc comments. Derive it
/// (`#[derive(ConfigDocs)]`) rather than implementing it by hand.
pub trait ConfigDocs {
    /// The type's doc comment: what is printed above a section of this type.
    const DOC: &'static str;
    /// For an enum used as a value: each value as written in the file, with
    /// its doc comment. Empty for a struct.
    const VALUES: &'static [(&'static str, &'static str)] = &[];
    /// Appends `(path, comment)` for each key and nested section, in
    /// declaration order (which is print order), paths under `prefix`.
    fn key_docs(prefix: &str, out: &mut Vec<KeyDoc>);
}

/// A key's comment followed by the values it takes, one `- value: doc` line
/// each (a doc's further lines indented under it): what a field marked
/// `#[config(values)]` prints.
pub fn with_values(doc: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::from(doc);
    for (value, value_doc) in values {
        let mut lines = value_doc.lines();
        out.push_str(&format!("\n- {value}: {}", lines.next().unwrap_or("")));
        for line in lines {
            out.push('\n');
            if !line.is_empty() {
                out.push_str("  ");
                out.push_str(line);
            }
        }
    }
    out
}

/// Every dotted key path of `T` with its comment, in print order.
pub fn key_docs<T: ConfigDocs>() -> Vec<KeyDoc> {
    let mut out = Vec::new();
    T::key_docs("", &mut out);
    out
}

/// `header`, then `value` as TOML with each key and section preceded by its
/// doc comment: what `-p` prints.
pub fn commented_toml<T: ConfigDocs + serde::Serialize>(value: &T, header: &str) -> String {
    let mut out = String::from(header);
    match toml::Value::try_from(value) {
        Ok(toml::Value::Table(root)) => write_documented::<T>(&mut out, &root),
        // Unreachable for a plain-data config struct, but a comment beats a panic.
        Ok(other) => out.push_str(&format!("# cannot print config: not a table: {other}\n")),
        Err(e) => out.push_str(&format!("# cannot print config: {e}\n")),
    }
    out
}

/// Appends `table` (a serialized `T`) as TOML with the comments `T`'s doc
/// comments give, keys in declaration order.
pub fn write_documented<T: ConfigDocs>(out: &mut String, table: &toml::Table) {
    let docs = key_docs::<T>();
    let comments: Vec<(&str, &str)> = docs.iter().map(|(p, c)| (p.as_str(), &**c)).collect();
    write_table(out, "", table, &comments);
}

/// Key paths of `table` (a serialized `T`) that `T` has no comment for: a
/// section field missing `#[config(section)]` shows up here. A config
/// crate's tests assert it is empty for the serialized default.
pub fn undocumented_keys<T: ConfigDocs>(table: &toml::Table) -> Vec<String> {
    let docs = key_docs::<T>();
    let mut missing = Vec::new();
    collect_undocumented(table, "", &docs, &mut missing);
    missing
}

fn collect_undocumented(
    table: &toml::Table,
    prefix: &str,
    docs: &[KeyDoc],
    missing: &mut Vec<String>,
) {
    for (key, value) in table {
        let path = join(prefix, key);
        if !docs.iter().any(|(p, c)| *p == path && !c.trim().is_empty()) {
            missing.push(path.clone());
        }
        if let toml::Value::Table(sub) = value {
            collect_undocumented(sub, &path, docs, missing);
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    // A span from the parser always lands on a char boundary, but a wrong
    // column beats a panic while reporting an error.
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Why a TOML text did not become a config, for the caller's own error type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TomlFailure {
    /// 1-based, where toml knows the place.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path being read; `None` when the parser itself failed.
    pub key: Option<String>,
    /// toml's explanation on one line, so the error stays greppable in logs.
    pub message: String,
}

/// Deserializes a whole config from TOML text, locating any failure by
/// line, column and key path.
pub fn from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlFailure> {
    let deserializer = toml::de::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let (line, column) = match inner.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        TomlFailure {
            line,
            column,
            // Path "." is serde_path_to_error's root: nothing was being
            // deserialized yet, so the parser itself failed.
            key: (path != ".").then_some(path),
            // toml's parser explains over several lines.
            message: inner.message().trim().replace('\n', "; "),
        }
    })
}

/// Writes where a config error is: `origin`, then `:line` and `:column`
/// where known. Both binaries start their error messages so.
pub fn write_place(
    f: &mut std::fmt::Formatter<'_>,
    origin: &str,
    line: Option<usize>,
    column: Option<usize>,
) -> std::fmt::Result {
    f.write_str(origin)?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
        if let Some(column) = column {
            write!(f, ":{column}")?;
        }
    }
    Ok(())
}

/// Best-effort line of `section.key` in TOML text, for errors found after
/// parsing, when spans are gone. Understands `[section]` then `key = …`,
/// and top-level dotted `section.key = …`; `None` when the key is absent,
/// which means the value is the default.
pub fn find_key_line(text: &str, path: &str) -> Option<usize> {
    let (section, key) = match path.rsplit_once('.') {
        Some((section, key)) => (section, key),
        None => ("", path),
    };
    let assigns = |line: &str, name: &str| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let mut current = "";
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.split(']').next().unwrap_or("").trim();
            current = header;
            continue;
        }
        if current == section && assigns(line, key) {
            return Some(i + 1);
        }
        if current.is_empty() && !section.is_empty() && assigns(line, path) {
            return Some(i + 1);
        }
    }
    None
}

/// The comment `comments` has for `path`.
pub fn comment_for(comments: &'static Comments, path: &str) -> Option<&'static str> {
    find_comment(comments, path)
}

fn find_comment<'a>(comments: &[(&str, &'a str)], path: &str) -> Option<&'a str> {
    comments.iter().find(|(p, _)| *p == path).map(|(_, c)| *c)
}

/// `prefix.key`, or `key` at the top level.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Appends `table` as TOML with each key and section preceded by its
/// comment from `comments`, keys in the order `comments` lists them.
pub fn write_commented(out: &mut String, table: &toml::Table, comments: &'static Comments) {
    write_table(out, "", table, comments);
}

fn push_comment(out: &mut String, path: &str, comments: &[(&str, &str)]) {
    // A key missing from the comments still prints; each crate has a test
    // that catches the omission.
    for line in find_comment(comments, path).unwrap_or("").lines() {
        // A paragraph break prints as a bare `#`: no trailing space.
        out.push('#');
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// Keys of `table` in `comments` order, then any the table has but
/// `comments` lacks (sorted, since the map is a BTreeMap).
fn ordered_keys<'a>(
    table: &'a toml::Table,
    prefix: &str,
    comments: &[(&str, &str)],
) -> Vec<&'a str> {
    let mut keys: Vec<&str> = Vec::with_capacity(table.len());
    for (path, _) in comments {
        let child = match prefix {
            "" => Some(*path),
            _ => path
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.')),
        };
        if let Some(child) = child.filter(|c| !c.contains('.')) {
            if let Some((key, _)) = table.get_key_value(child) {
                keys.push(key.as_str());
            }
        }
    }
    for key in table.keys() {
        if !keys.contains(&key.as_str()) {
            keys.push(key);
        }
    }
    keys
}

/// Writes the plain keys of `table` first, then each sub-table as its own
/// `[section]`: TOML assigns keys after a header to that header's table.
fn write_table(out: &mut String, prefix: &str, table: &toml::Table, comments: &[(&str, &str)]) {
    let keys = ordered_keys(table, prefix, comments);
    for key in &keys {
        let value = &table[*key];
        if value.is_table() {
            continue;
        }
        out.push('\n');
        push_comment(out, &join(prefix, key), comments);
        out.push_str(&format!("{} = {value}\n", toml_key(key)));
    }
    for key in &keys {
        if let toml::Value::Table(sub) = &table[*key] {
            let path = join(prefix, key);
            out.push('\n');
            push_comment(out, &path, comments);
            let header = path.split('.').map(toml_key).collect::<Vec<_>>().join(".");
            out.push_str(&format!("[{header}]\n"));
            write_table(out, &path, sub, comments);
        }
    }
}

/// A key as TOML needs it written: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ä = 1\nb", 0), (1, 1));
        assert_eq!(line_column("ä = 1\nb", 3), (1, 3));
        assert_eq!(line_column("ä = 1\nb", 7), (2, 1));
        assert_eq!(line_column("a\n", 99), (2, 1));
        assert_eq!(line_column("ä", 1), (1, 1), "not a char boundary");
    }

    static COMMENTS: &Comments = &[
        ("top", "The top key."),
        ("b", "Section b,\non two lines."),
        ("b.y", "Printed first."),
        ("b.x", "Printed second."),
    ];

    #[test]
    fn writes_in_comment_order_with_comments_and_quoted_keys() {
        let table: toml::Table =
            toml::from_str("top = 1\nextra = true\n[b]\nx = \"s\"\ny = [1]\n\"odd key\" = 2\n")
                .unwrap();
        let mut out = String::new();
        write_commented(&mut out, &table, COMMENTS);
        assert_eq!(
            out,
            "\n# The top key.\ntop = 1\n\nextra = true\n\n# Section b,\n# on two lines.\n[b]\n\n\
             # Printed first.\ny = [1]\n\n# Printed second.\nx = \"s\"\n\n\"odd key\" = 2\n"
        );
        let back: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(back, table);
    }

    /// The whole file (never printed).
    #[derive(serde::Serialize, ConfigDocs)]
    struct Root {
        /// The top key,
        /// on two lines.
        top: u32,
        #[config(section)]
        outer: Outer,
        /// This place's own comment for a reused section.
        #[config(section)]
        other: Inner,
    }

    /// The outer section.
    #[derive(serde::Serialize, ConfigDocs)]
    #[serde(rename_all = "kebab-case")]
    struct Outer {
        /// Renamed by the struct's rule.
        max_in_flight: u32,
        /// Renamed by its own attribute.
        #[serde(rename = "exact")]
        renamed: bool,
        #[serde(skip)]
        #[allow(dead_code)] // Skipped by serde, which is the point.
        hidden: u8,
        #[config(section)]
        inner: Inner,
        #[serde(flatten)]
        flat: Flat,
    }

    /// The inner section.
    ///
    /// A second paragraph.
    #[derive(serde::Serialize, ConfigDocs)]
    struct Inner {
        /// A list:
        ///   indented continuation.
        list: Vec<u16>,
    }

    /// Never printed: flattened.
    #[derive(serde::Serialize, ConfigDocs)]
    struct Flat {
        /// Lifted into the outer section.
        lifted: String,
    }

    fn root() -> Root {
        Root {
            top: 1,
            outer: Outer {
                max_in_flight: 16,
                renamed: true,
                hidden: 9,
                inner: Inner { list: vec![1, 2] },
                flat: Flat { lifted: "x".into() },
            },
            other: Inner { list: vec![] },
        }
    }

    #[test]
    fn derived_docs_print_nested_sections_byte_for_byte() {
        let text = commented_toml(&root(), "# header\n");
        assert_eq!(
            text,
            "# header\n\
             \n# The top key,\n# on two lines.\ntop = 1\n\
             \n# The outer section.\n[outer]\n\
             \n# Renamed by the struct's rule.\nmax-in-flight = 16\n\
             \n# Renamed by its own attribute.\nexact = true\n\
             \n# Lifted into the outer section.\nlifted = \"x\"\n\
             \n# The inner section.\n#\n# A second paragraph.\n[outer.inner]\n\
             \n# A list:\n#   indented continuation.\nlist = [1, 2]\n\
             \n# This place's own comment for a reused section.\n[other]\n\
             \n# A list:\n#   indented continuation.\nlist = []\n"
        );
        let toml::Value::Table(table) = toml::Value::try_from(root()).unwrap() else {
            panic!("not a table");
        };
        assert_eq!(toml::from_str::<toml::Table>(&text).unwrap(), table);
        assert_eq!(undocumented_keys::<Root>(&table), Vec::<String>::new());
    }

    /// A section field that lacks `#[config(section)]`.
    #[derive(serde::Serialize, ConfigDocs)]
    struct Forgot {
        /// Documented as a key, but its sub-keys are not.
        inner: Inner,
    }

    #[test]
    fn undocumented_keys_names_a_section_missing_its_attribute() {
        let value = Forgot {
            inner: Inner { list: vec![3] },
        };
        let toml::Value::Table(table) = toml::Value::try_from(value).unwrap() else {
            panic!("not a table");
        };
        assert_eq!(undocumented_keys::<Forgot>(&table), vec!["inner.list"]);
    }

    /// How to attach (never printed: values only).
    #[derive(serde::Serialize, ConfigDocs)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)] // Only one variant is serialized.
    enum Mode {
        /// Driver mode where the driver has it,
        /// else generic.
        AutoDetect,
        /// Only driver mode.
        Driver,
        /// Spelled its own way.
        #[serde(rename = "skb")]
        Generic,
        #[serde(skip)]
        Hidden,
    }

    /// Keys whose values are described.
    #[derive(serde::Serialize, ConfigDocs)]
    struct WithValues {
        /// How the program is attached:
        #[config(values)]
        mode: Mode,
    }

    #[test]
    fn values_of_an_enum_follow_its_key_comment() {
        let text = commented_toml(
            &WithValues {
                mode: Mode::AutoDetect,
            },
            "",
        );
        assert_eq!(
            text,
            "\n# How the program is attached:\n# - auto-detect: Driver mode where the driver has it,\n\
             #   else generic.\n# - driver: Only driver mode.\n# - skb: Spelled its own way.\n\
             mode = \"auto-detect\"\n"
        );
    }
}

//! Config-file plumbing shared by `tracker-user` and `tracker-load`: both
//! print their defaults as commented TOML (`-p`) and report a bad file by
//! line, column and key path. Each crate keeps its own structs and its own
//! table of comments; this crate only walks them.

/// A comment for each dotted key path (`"section"`, `"section.key"`), in
/// the order the keys are printed.
pub type Comments = [(&'static str, &'static str)];

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

fn push_comment(out: &mut String, path: &str, comments: &'static Comments) {
    // A key missing from the comments still prints; each crate has a test
    // that catches the omission.
    for line in comment_for(comments, path).unwrap_or("").lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Keys of `table` in `comments` order, then any the table has but
/// `comments` lacks (sorted, since the map is a BTreeMap).
fn ordered_keys<'a>(table: &'a toml::Table, prefix: &str, comments: &Comments) -> Vec<&'a str> {
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
fn write_table(out: &mut String, prefix: &str, table: &toml::Table, comments: &'static Comments) {
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
}

//! One oslo.config INI file, parsed by oslo.config's rules (its `iniparser`), which are not
//! Python's `configparser`'s nor those of the INI crates we looked at:
//!
//! - a line starting with `#` or `;` is a comment; anywhere else they are part of the value;
//! - a line starting with a space or a tab continues the value above it (joined with `\n`),
//!   even when it looks like a comment; a blank line ends the value;
//! - `key = value` or `key: value`, split at whichever of `=` and `:` comes first; key and
//!   value are trimmed, and a value quoted with the same quote at both ends loses them;
//! - a key may repeat: every value is kept, in order (single options take the last one,
//!   multi-valued options all of them).

/// One assignment: section as written, key, value (continuations joined), and its line.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IniEntry {
    pub(crate) section: String,
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) line: usize,
}

/// Shows where, never the value (it may be a password).
impl std::fmt::Debug for IniEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IniEntry")
            .field("section", &self.section)
            .field("key", &self.key)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// A line that breaks the rules: its number (from 1) and what is wrong. The line's text is
/// never repeated (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniSyntax {
    pub(crate) line: usize,
    pub(crate) reason: &'static str,
}

/// An assignment still taking continuation lines.
struct Pending {
    key: String,
    lines: Vec<String>,
    line: usize,
}

/// Parses a file's text into its assignments, in order.
pub(crate) fn parse(text: &str) -> Result<Vec<IniEntry>, IniSyntax> {
    let mut entries = Vec::new();
    let mut section: Option<String> = None;
    let mut pending: Option<Pending> = None;
    let flush = |pending: &mut Option<Pending>,
                 section: &Option<String>,
                 entries: &mut Vec<IniEntry>|
     -> Result<(), IniSyntax> {
        if let Some(p) = pending.take() {
            let Some(section) = section else {
                return Err(IniSyntax {
                    line: p.line,
                    reason: "an assignment before any [section]",
                });
            };
            entries.push(IniEntry {
                section: section.clone(),
                key: p.key,
                value: p.lines.join("\n"),
                line: p.line,
            });
        }
        Ok(())
    };
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            flush(&mut pending, &section, &mut entries)?;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some(p) => p.lines.push(line.trim_start().to_string()),
                None => {
                    return Err(IniSyntax {
                        line: number,
                        reason: "a continuation line (it starts with a space or a tab) \
                                 with no assignment above it",
                    });
                }
            }
            continue;
        }
        flush(&mut pending, &section, &mut entries)?;
        if line.starts_with('[') {
            if !line.ends_with(']') {
                return Err(IniSyntax {
                    line: number,
                    reason: "a section header that does not end with `]`",
                });
            }
            if line.len() <= 2 {
                return Err(IniSyntax {
                    line: number,
                    reason: "an empty section name",
                });
            }
            section = Some(line[1..line.len() - 1].to_string());
        } else if line.starts_with(['#', ';']) {
            // a comment
        } else {
            let (key, value) = split_assignment(line).ok_or(IniSyntax {
                line: number,
                reason: "no `=` or `:` in an assignment",
            })?;
            if key.is_empty() {
                return Err(IniSyntax {
                    line: number,
                    reason: "an assignment with an empty key",
                });
            }
            pending = Some(Pending {
                key,
                lines: vec![value],
                line: number,
            });
        }
    }
    flush(&mut pending, &section, &mut entries)?;
    Ok(entries)
}

/// `key = value` or `key: value` (whichever separator comes first), trimmed, the value
/// unquoted when the same quote opens and closes it.
fn split_assignment(line: &str) -> Option<(String, String)> {
    let at = match (line.find('='), line.find(':')) {
        (None, None) => return None,
        (Some(e), None) => e,
        (None, Some(c)) => c,
        (Some(e), Some(c)) => e.min(c),
    };
    let key = line[..at].trim();
    let value = line[at + 1..].trim();
    let bytes = value.as_bytes();
    let value = match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) if first == last && (first == b'"' || first == b'\'') => {
            value.get(1..value.len().saturating_sub(1)).unwrap_or("")
        }
        _ => value,
    };
    Some((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.section, e.key, e.value))
            .collect()
    }

    fn p(s: &str, k: &str, v: &str) -> (String, String, String) {
        (s.into(), k.into(), v.into())
    }

    #[test]
    fn oslo_rules() {
        let text = "# a comment\n[DEFAULT]\n; another\nkey = value # not a comment\n\
                    url: rabbit://a:b@h:5672/\nlong = first\n  second\n\t# third\n\nq = \"quoted\"\n\
                    q1 = 'x'\nhalf = \"x\nsingle = \"\n[oslo_messaging_rabbit]\nrepeat=1\nrepeat=2\nempty =\n";
        assert_eq!(
            pairs(text),
            vec![
                p("DEFAULT", "key", "value # not a comment"),
                p("DEFAULT", "url", "rabbit://a:b@h:5672/"),
                p("DEFAULT", "long", "first\nsecond\n# third"),
                p("DEFAULT", "q", "quoted"),
                p("DEFAULT", "q1", "x"),
                p("DEFAULT", "half", "\"x"),
                p("DEFAULT", "single", ""),
                p("oslo_messaging_rabbit", "repeat", "1"),
                p("oslo_messaging_rabbit", "repeat", "2"),
                p("oslo_messaging_rabbit", "empty", ""),
            ]
        );
        // `=` or `:`, whichever comes first
        assert_eq!(
            pairs("[a]\nk: v=w\nk2 = v:w\r\n"),
            vec![p("a", "k", "v=w"), p("a", "k2", "v:w")]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line) in [
            ("k = v\n", 1),
            ("[a]\n  cont\n", 2),
            ("[a\n", 1),
            ("[]\n", 1),
            ("[a]\nno separator\n", 2),
            ("[a]\n= v\n", 2),
        ] {
            assert_eq!(parse(text).unwrap_err().line, line, "{text:?}");
        }
    }
}

//! oslo.config's `$name` substitution in values: `$name` or `${name}` is the value of option
//! `name` (of the value's own section, else of `[DEFAULT]`), `$group.name` that of another
//! section; `$$` and `\$` are a `$`; a `$` followed by no name stays as it is.

/// Replaces every reference in `text` by what `resolve` gives for its name.
pub(crate) fn substitute<E>(
    text: &str,
    mut resolve: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let text = text.replace("\\$", "$$");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let len = name_len(inner);
            if len > 0 && inner[len..].starts_with('}') {
                out.push_str(&resolve(&inner[..len])?);
                rest = &inner[len + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        } else {
            let len = name_len(after);
            if len > 0 {
                out.push_str(&resolve(&after[..len])?);
            } else {
                out.push('$');
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the name at the start of `s` (oslo's `[_a-z][._a-z0-9]*`, any case).
fn name_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return 0,
    }
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'.')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(text: &str) -> String {
        substitute(text, |name| Ok::<_, ()>(format!("<{name}>"))).unwrap()
    }

    #[test]
    fn references_escapes_and_stray_dollars() {
        assert_eq!(sub("no dollars"), "no dollars");
        assert_eq!(sub("$a/${b_c}x"), "<a>/<b_c>x");
        assert_eq!(sub("$grp.opt:1"), "<grp.opt>:1");
        assert_eq!(sub("pa$$word \\$x"), "pa$word $x");
        assert_eq!(sub("$1 $ ${9} ${open"), "$1 $ ${9} ${open");
        assert_eq!(sub("end$"), "end$");
        assert_eq!(sub("$Host"), "<Host>");
    }

    #[test]
    fn a_failed_reference_fails_the_value() {
        let r = substitute("x $nope", |n| Err::<String, _>(n.to_string()));
        assert_eq!(r.unwrap_err(), "nope");
    }
}

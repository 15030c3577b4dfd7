//! Passwords masked as oslo.utils masks them (`strutils.mask_password` and
//! `mask_dict_password`): by key in JSON objects, and by pattern (`password=...`,
//! `"token": "..."`, `--password ...`, `<password>...</password>`) inside strings.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// oslo.utils' names of secrets: a key that contains one (in any case) is masked.
const SECRET_KEYS: &[&str] = &[
    "adminpass",
    "admin_pass",
    "password",
    "admin_password",
    "auth_token",
    "new_pass",
    "auth_password",
    "secret_uuid",
    "secret",
    "sys_pswd",
    "token",
    "configdrive",
    "chappassword",
    "encrypted_key",
    "private_key",
    "fernetkey",
    "sslkey",
    "passphrase",
    "cephclusterfsid",
    "octaviaheartbeatkey",
    "rabbitcookie",
    "cephmanilaclientkey",
    "pacemakerremoteauthkey",
    "designaterndckey",
    "cephadminkey",
    "heatauthencryptionkey",
    "cephclientkey",
    "keystonecredential",
    "barbicansimplecryptokek",
    "cephrgwkey",
    "swifthashsuffix",
    "migrationsshkey",
    "cephmdskey",
    "cephmonkey",
    "chapsecret",
];

/// oslo.utils' patterns, in its order, `KEY` standing for a secret name, with what a match
/// becomes: the value between the kept groups is masked (the last pattern keeps the first
/// group only, as oslo's does).
const PATTERNS: &[(&str, &str)] = &[
    (r#"(KEY[0-9]*\s*[=]\s*["'])[^"']*(["'])"#, "${1}***${2}"),
    (r#"(KEY[0-9]*\s*[=]\s*["])[^"]*(["])"#, "${1}***${2}"),
    (r#"(KEY[0-9]*\s*[=]\s*['])[^']*(['])"#, "${1}***${2}"),
    (r#"(KEY[0-9]*\s+["'])[^"']*(["'])"#, "${1}***${2}"),
    (r#"([-]{2}KEY[0-9]*\s+)[^'"=\s^]+([\s]*)"#, "${1}***${2}"),
    (r#"(<KEY[0-9]*>)[^<]*(</KEY[0-9]*>)"#, "${1}***${2}"),
    (
        r#"(["']KEY[0-9]*["']\s*:\s*["'])[^"']*(["'])"#,
        "${1}***${2}",
    ),
    (
        r#"(['"][^"']*KEY[0-9]*['"]\s*:\s*u?['"])[^"']*(['"])"#,
        "${1}***${2}",
    ),
    (
        r#"(['"][^'"]*KEY[0-9]*['"]\s*,\s*'--?[A-z]+'\s*,\s*u?['"])[^"']*(['"])"#,
        "${1}***${2}",
    ),
    (r#"(KEY[0-9]*\s*--?[A-z]+\s*)\S+(\s*)"#, "${1}***${2}"),
    (r#"(KEY[0-9]*\s*[=]\s*)[^\s^'"]+"#, "${1}***"),
    (
        r#"(['"][^"']*KEY[0-9]*['"]\s*:\s*u?['"].*['"])[^"']*(['"])"#,
        "${1}",
    ),
];

/// Each secret name's patterns, compiled the first time a text holds the name.
static COMPILED: [OnceLock<Vec<(Regex, &'static str)>>; SECRET_KEYS.len()] =
    [const { OnceLock::new() }; SECRET_KEYS.len()];

/// The patterns of one secret name, compiled.
fn compile(key: &str) -> Vec<(Regex, &'static str)> {
    PATTERNS
        .iter()
        .filter_map(|(pattern, replacement)| {
            // the patterns are constants, checked by a test: none fails to compile
            Regex::new(&format!("(?si){}", pattern.replace("KEY", key)))
                .ok()
                .map(|re| (re, *replacement))
        })
        .collect()
}

/// Whether a key names a secret (oslo.utils' list, as a part of the key, in any case).
pub fn is_secret_name(key: &str) -> bool {
    let key = key.to_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// A text with the secrets it spells out masked (oslo's `mask_password`).
///
/// ```
/// use msg_client::mask_password;
/// assert_eq!(mask_password("login --password hunter2 now"), "login --password *** now");
/// assert_eq!(mask_password(r#"{"adminPass": "aaaaa"}"#), r#"{"adminPass": "***"}"#);
/// assert_eq!(mask_password("nothing to hide"), "nothing to hide");
/// ```
pub fn mask_password(text: &str) -> String {
    if !SECRET_KEYS.iter().any(|k| text.to_lowercase().contains(k)) {
        return text.to_string();
    }
    // oslo's order: name by name, each name's patterns in turn, so the results are oslo's
    let mut out = text.to_string();
    for (key, compiled) in SECRET_KEYS.iter().zip(&COMPILED) {
        if !out.to_lowercase().contains(key) {
            continue;
        }
        for (re, replacement) in compiled.get_or_init(|| compile(key)) {
            if let std::borrow::Cow::Owned(masked) = re.replace_all(&out, *replacement) {
                out = masked;
            }
        }
    }
    out
}

/// A JSON value with every secret masked (oslo's `mask_dict_password`, over the whole
/// value): an object member whose key names a secret becomes `***` (unless it is an object
/// itself, which is masked member by member, as oslo does), strings are masked by
/// [`mask_password`], arrays and objects all the way down.
///
/// ```
/// use msg_client::mask_value;
/// let v = serde_json::json!({"user": "admin", "Admin_Password": "p", "auth": {"password": 1},
///     "nested": [{"token": "t"}, "--password p"]});
/// assert_eq!(mask_value(&v), serde_json::json!({"user": "admin", "Admin_Password": "***",
///     "auth": {"password": "***"}, "nested": [{"token": "***"}, "--password ***"]}));
/// ```
pub fn mask_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_name(k) && !v.is_object() {
                        Value::String(MASK.to_string())
                    } else {
                        mask_value(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        Value::String(s) => Value::String(mask_password(s)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for key in SECRET_KEYS {
            assert_eq!(compile(key).len(), PATTERNS.len(), "{key}");
        }
    }

    #[test]
    fn oslo_utils_examples() {
        for (text, masked) in [
            ("'adminPass' : 'aaaaa'", "'adminPass' : '***'"),
            ("'admin_pass' : 'aaaaa'", "'admin_pass' : '***'"),
            (r#""password" : "aaaaa""#, r#""password" : "***""#),
            (
                "'original_password' : 'aaaaa'",
                "'original_password' : '***'",
            ),
            ("password=secret123 rest", "password=*** rest"),
            ("<password>p</password>", "<password>***</password>"),
            (
                "rabbit://nova:x@h auth_token='abc'",
                "rabbit://nova:x@h auth_token='***'",
            ),
        ] {
            assert_eq!(mask_password(text), masked, "{text}");
        }
    }
}

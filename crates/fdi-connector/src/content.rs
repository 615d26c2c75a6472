//! What a datasource's `content` may hold, and how its secrets are kept out of responses.
//!
//! Each connector declares its content fields ([`ContentField`]): which are plain, which are
//! secrets (sealed at rest, shown as [`MASK`]) and which are URLs that may carry a password
//! (`mysql://user:secret@host/db`, `postgres://h/db?password=secret`: the password part is masked).
//! Keys a type does not declare are neither stored nor echoed.

use serde_json::{Map, Value};

/// What every response shows instead of a secret.
pub const MASK: &str = "******";

/// How a content field is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Stored and shown as sent.
    Plain,
    /// A secret: shown as `******`; sending `******` back (or leaving it out) keeps the stored one.
    Secret,
    /// A URL whose password (userinfo or `password=` query parameter) is a secret.
    Url,
}

/// One field a connector's `content` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentField {
    pub name: &'static str,
    pub kind: FieldKind,
}

impl ContentField {
    pub const fn plain(name: &'static str) -> Self {
        Self {
            name,
            kind: FieldKind::Plain,
        }
    }
    pub const fn secret(name: &'static str) -> Self {
        Self {
            name,
            kind: FieldKind::Secret,
        }
    }
    pub const fn url(name: &'static str) -> Self {
        Self {
            name,
            kind: FieldKind::Url,
        }
    }
}

fn kind_of(fields: &[ContentField], name: &str) -> Option<FieldKind> {
    fields.iter().find(|f| f.name == name).map(|f| f.kind)
}

/// Drop every key that `fields` does not declare.
pub fn retain_declared(content: &mut Map<String, Value>, fields: &[ContentField]) {
    content.retain(|k, _| kind_of(fields, k).is_some());
}

/// The content as a response shows it: undeclared keys dropped, secrets masked, URL passwords
/// masked.
pub fn masked(content: &Value, fields: &[ContentField]) -> Value {
    let Some(map) = content.as_object() else {
        return Value::Object(Map::new());
    };
    let out = map
        .iter()
        .filter_map(|(k, v)| {
            let shown = match kind_of(fields, k)? {
                FieldKind::Plain => v.clone(),
                FieldKind::Secret if v.is_null() => Value::Null,
                FieldKind::Secret => Value::String(MASK.into()),
                FieldKind::Url => match v.as_str() {
                    Some(url) => Value::String(mask_url_password(url)),
                    None => v.clone(),
                },
            };
            Some((k.clone(), shown))
        })
        .collect();
    Value::Object(out)
}

/// Why [`keep_stored_secrets`] refused a content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content.{field}: {reason}")]
pub struct SecretError {
    pub field: String,
    pub reason: String,
}

/// Fill in the secrets a client sent back masked (or left out) from the stored content, so that a
/// GET → edit → PUT round trip keeps the password.
///
/// `stored` is `None` when there is nothing to keep from (a new datasource, or a change of
/// datasource type): a masked secret is then refused, since the mask is never a password.
pub fn keep_stored_secrets(
    new: &mut Map<String, Value>,
    stored: Option<&Value>,
    fields: &[ContentField],
) -> Result<(), SecretError> {
    let stored = stored.and_then(Value::as_object);
    for f in fields {
        let old = stored.and_then(|s| s.get(f.name));
        match f.kind {
            FieldKind::Plain => {}
            FieldKind::Secret => {
                let masked_or_absent = match new.get(f.name) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => s == MASK,
                    Some(_) => false,
                };
                if !masked_or_absent {
                    continue;
                }
                match old {
                    Some(old) => {
                        new.insert(f.name.to_string(), old.clone());
                    }
                    None if new.get(f.name).is_some_and(|v| v.as_str() == Some(MASK)) => {
                        return Err(SecretError {
                            field: f.name.into(),
                            reason: format!(
                                "{MASK} is the mask shown in responses, not a value; send the secret itself"
                            ),
                        });
                    }
                    None => {}
                }
            }
            FieldKind::Url => {
                let Some(url) = new.get(f.name).and_then(Value::as_str) else {
                    continue;
                };
                if url_password(url).is_none_or(|p| p != MASK) {
                    continue;
                }
                let kept = old
                    .and_then(Value::as_str)
                    .and_then(url_password)
                    .map(|p| replace_url_password(url, &p));
                match kept {
                    Some(u) => {
                        new.insert(f.name.to_string(), Value::String(u));
                    }
                    None => {
                        return Err(SecretError {
                            field: f.name.into(),
                            reason: format!(
                                "the password in the URL is the mask {MASK} and there is no stored password to keep; send the password itself"
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Secrets a type change must carry: the new type's secret fields that are sent masked.
pub fn masked_secrets(content: &Map<String, Value>, fields: &[ContentField]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|f| match f.kind {
            FieldKind::Plain => false,
            FieldKind::Secret => content.get(f.name).and_then(Value::as_str) == Some(MASK),
            FieldKind::Url => content
                .get(f.name)
                .and_then(Value::as_str)
                .and_then(url_password)
                .is_some_and(|p| p == MASK),
        })
        .map(|f| f.name)
        .collect()
}

/// Where a URL keeps its password: the userinfo (`scheme://user:PASSWORD@host`) and/or a
/// `password=` query parameter. Byte ranges of each occurrence in `url`.
fn password_ranges(url: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if let Some(at) = authority.rfind('@') {
        let userinfo = &authority[..at];
        if let Some(colon) = userinfo.find(':') {
            out.push(authority_start + colon + 1..authority_start + at);
        }
    }
    if let Some(q) = url.find('?') {
        let query_end = url[q..].find('#').map(|h| q + h).unwrap_or(url.len());
        let mut pos = q + 1;
        for pair in url[q + 1..query_end].split('&') {
            if let Some((key, _)) = pair.split_once('=') {
                let key = key.to_ascii_lowercase();
                if matches!(key.as_str(), "password" | "sslpassword" | "pwd" | "passwd") {
                    let value_start = pos + key.len() + 1;
                    out.push(value_start..pos + pair.len());
                }
            }
            pos += pair.len() + 1;
        }
    }
    out
}

/// The first password a URL carries (userinfo first), if any and non-empty.
pub fn url_password(url: &str) -> Option<String> {
    password_ranges(url)
        .into_iter()
        .map(|r| url[r].to_string())
        .find(|p| !p.is_empty())
}

fn replace_url_password(url: &str, with: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut last = 0;
    for r in password_ranges(url) {
        out.push_str(&url[last..r.start]);
        if r.is_empty() {
            out.push_str(&url[r.clone()]);
        } else {
            out.push_str(with);
        }
        last = r.end;
    }
    out.push_str(&url[last..]);
    out
}

/// A query parameter of a URL (`sslrootcert`, `ssl-mode`), percent-decoded: the first with
/// exactly this name.
pub fn url_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

/// `%xx` escapes decoded (invalid UTF-8 replaced); a `%` not followed by two hex digits is kept.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = b.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `mysql://user:secret@host/db` → `mysql://user:******@host/db` (query passwords too).
pub fn mask_url_password(url: &str) -> String {
    replace_url_password(url, MASK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[ContentField] = &[
        ContentField::plain("host"),
        ContentField::secret("password"),
        ContentField::url("url"),
    ];

    #[test]
    fn url_passwords_are_found_and_masked() {
        assert_eq!(
            mask_url_password("mysql://u:s3cr%40t@h:3306/db"),
            "mysql://u:******@h:3306/db"
        );
        assert_eq!(
            mask_url_password("postgres://h/db?sslmode=disable&password=pw&x=1"),
            "postgres://h/db?sslmode=disable&password=******&x=1"
        );
        assert_eq!(mask_url_password("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(mask_url_password("/tmp/a:b@c"), "/tmp/a:b@c");
        assert_eq!(
            mask_url_password("mysql://u:p@ss@h/db"),
            "mysql://u:******@h/db",
            "the last @ ends the userinfo"
        );
        assert_eq!(url_password("mysql://u:@h/db"), None);
        assert_eq!(url_password("postgres://u:a@h/db").as_deref(), Some("a"));
    }

    #[test]
    fn masked_drops_undeclared_keys() {
        let c = json!({"host": "h", "password": "pw", "passwd": "x", "url": "mysql://u:pw@h/d"});
        let m = masked(&c, FIELDS);
        assert_eq!(
            m,
            json!({"host": "h", "password": MASK, "url": "mysql://u:******@h/d"})
        );
    }

    #[test]
    fn mask_round_trip_keeps_the_stored_secrets() {
        let stored = json!({"host": "h", "password": "pw", "url": "mysql://u:pw2@h/d"});
        let shown = masked(&stored, FIELDS);
        let mut back = shown.as_object().unwrap().clone();
        keep_stored_secrets(&mut back, Some(&stored), FIELDS).unwrap();
        assert_eq!(Value::Object(back), stored);

        let mut omitted = json!({"host": "h2"}).as_object().unwrap().clone();
        keep_stored_secrets(&mut omitted, Some(&stored), FIELDS).unwrap();
        assert_eq!(omitted["password"], "pw");

        let mut changed = json!({"password": "new", "url": "mysql://u:new2@h/d"})
            .as_object()
            .unwrap()
            .clone();
        keep_stored_secrets(&mut changed, Some(&stored), FIELDS).unwrap();
        assert_eq!(changed["password"], "new");
        assert_eq!(changed["url"], "mysql://u:new2@h/d");
    }

    #[test]
    fn the_mask_is_never_taken_as_a_secret() {
        let mut c = json!({"password": MASK}).as_object().unwrap().clone();
        let e = keep_stored_secrets(&mut c, None, FIELDS).unwrap_err();
        assert_eq!(e.field, "password");
        let mut c = json!({"url": "mysql://u:******@h/d"})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            keep_stored_secrets(&mut c, Some(&json!({"url": "mysql://u@h/d"})), FIELDS)
                .unwrap_err()
                .field,
            "url"
        );
        let c = json!({"password": MASK, "url": "mysql://u:******@h/d", "host": MASK});
        assert_eq!(
            masked_secrets(c.as_object().unwrap(), FIELDS),
            vec!["password", "url"]
        );
    }
}

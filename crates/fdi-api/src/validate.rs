//! Field rules of the reference that need no I/O.

use fdi_types::ErrorCode;

use crate::error::{Error, Result};

/// Task name: 3-100 characters, starts with a letter or digit, then letters, digits, `.`, `_`, `-`
/// (FDI.3157).
pub fn task_name(name: &str) -> Result<()> {
    task_name_of("task.task_name", name)
}

/// [`task_name`] for a body that spells the field `field` (combination tasks: `task_name`).
pub fn task_name_of(field: &str, name: &str) -> Result<()> {
    let ok = (3..=100).contains(&name.chars().count())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidTaskName,
            format!(
                "{field}: {name:?} (3-100 letters, digits, . _ or -, starting with a letter or digit)"
            ),
        ))
    }
}

/// Task tag: 4-64 letters, digits, `-`, `_` (FDI.3557).
pub fn task_tag(tag: &str) -> Result<()> {
    task_tag_of("task.task_tag", tag)
}

/// [`task_tag`] for a body that spells the field `field`.
pub fn task_tag_of(field: &str, tag: &str) -> Result<()> {
    let ok = (4..=64).contains(&tag.chars().count())
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidTaskTag,
            format!("{field}: {tag:?} (4-64 letters, digits, - or _)"),
        ))
    }
}

/// Description: at most 1024 characters (FDI.3142); line breaks and tabs allowed, no other
/// control characters.
pub fn description(field: &str, d: &str) -> Result<()> {
    if d.chars().count() > 1024 {
        return Err(Error::new(ErrorCode::DescriptionTooLong, field));
    }
    if let Some(c) = d
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::field(
            field,
            format!("cannot contain the control character {c:?}"),
        ));
    }
    Ok(())
}

/// A name: no control characters at all (`\0`, line breaks, escapes).
fn no_control_chars(field: &str, name: &str) -> Result<()> {
    match name.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::field(
            field,
            format!("cannot contain the control character {c:?}"),
        )),
        None => Ok(()),
    }
}

/// Datasource name: 1-255 characters, not only spaces, none of `& < > " ' ( )` (reference 5.1.1).
pub fn datasource_name(name: &str) -> Result<()> {
    const FORBIDDEN: &[char] = &['&', '<', '>', '"', '\'', '(', ')'];
    if name.trim().is_empty() {
        return Err(Error::field(
            "datasource_name",
            "is required and cannot be only spaces",
        ));
    }
    no_control_chars("datasource_name", name)?;
    if name.chars().count() > 255 {
        return Err(Error::field(
            "datasource_name",
            "must be at most 255 characters",
        ));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(Error::field(
            "datasource_name",
            format!("cannot contain {c:?} (forbidden: & < > \" ' ( ))"),
        ));
    }
    Ok(())
}

/// App name: Chinese or English letters, digits, `-`, `_`, `.`, spaces and ASCII/full-width
/// parentheses (apps reference 4.1.3), 1-64 characters.
pub fn app_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::field("name", "is required"));
    }
    no_control_chars("name", name)?;
    if name.chars().count() > 64 {
        return Err(Error::field("name", "must be at most 64 characters"));
    }
    let ok = name.chars().all(|c| {
        c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ' | '(' | ')' | '（' | '）')
    });
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            "name",
            format!("{name:?}: only letters, digits, - _ . spaces and parentheses"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(task_name("abc").is_ok());
        assert!(task_name("a.b_c-d9").is_ok());
        for bad in ["ab", "_x1", "has space", &"x".repeat(101), "名字名字"] {
            assert_eq!(task_name(bad).unwrap_err().0.code, "FDI.3157", "{bad}");
        }
        assert!(task_tag("ab-_9").is_ok());
        assert_eq!(task_tag("abc").unwrap_err().0.code, "FDI.3557");
        assert_eq!(task_tag("a b c d").unwrap_err().0.code, "FDI.3557");
        assert!(datasource_name("ok name 1").is_ok());
        assert!(datasource_name("bad<name>").is_err());
        assert!(datasource_name("   ").is_err());
        for bad in ["a\u{0}b", "a\nb", "a\u{1b}[31mb"] {
            assert!(datasource_name(bad).is_err(), "{bad:?}");
            assert!(app_name(bad).is_err(), "{bad:?}");
        }
        assert!(description("d", "line 1\nline 2\ttab").is_ok());
        assert!(description("d", "nul\u{0}").is_err());
        assert_eq!(
            description("d", &"x".repeat(1025)).unwrap_err().0.code,
            "FDI.3142"
        );
    }
}

//! Resource addresses and `${name.attribute}` references.

use crate::schema::Invalid;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of a resource inside one environment, e.g. `web-3`.
///
/// Names are what references use, what state is keyed by and what ownership
/// tags carry, so they are restricted to characters every cloud accepts in a tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceAddr(String);

impl ResourceAddr {
    /// Checks the name: ASCII letters, digits, `-` and `_`, starting with a letter or digit, at most 128 characters.
    pub fn parse(name: &str) -> Result<Self, Invalid> {
        if name.is_empty() {
            return Err(Invalid::from("a resource name cannot be empty"));
        }
        if name.len() > 128 {
            return Err(Invalid(format!("resource name `{name}` is longer than 128 characters")));
        }
        let first = name.chars().next().unwrap_or('-');
        if !first.is_ascii_alphanumeric() {
            return Err(Invalid(format!("resource name `{name}` must start with a letter or digit")));
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(Invalid(format!("resource name `{name}` contains `{bad}`; use letters, digits, `-` and `_`")));
        }
        Ok(Self(name.to_string()))
    }

    /// For names already checked (state files, plans written by Phoenix).
    pub fn new_unchecked(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `${resource.attribute}` inside a string value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub resource: ResourceAddr,
    pub attribute: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}.{}}}", self.resource, self.attribute)
    }
}

/// One piece of a string that may interpolate references.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment<'a> {
    Text(std::borrow::Cow<'a, str>),
    Ref(Reference),
}

/// Splits a string into literal text and references.
///
/// `$${` escapes a literal `${`. A malformed reference (`${x}`, `${a.}`, an
/// unclosed `${`) is an error naming the offending text.
pub fn parse_segments(s: &str) -> Result<Vec<Segment<'_>>, Invalid> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut text = String::new();
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = stripped;
        } else if let Some(body_start) = after.strip_prefix("${") {
            let Some(end) = body_start.find('}') else {
                return Err(Invalid(format!("unclosed reference `{after}`: expected `${{name.attribute}}`")));
            };
            let body = body_start[..end].trim();
            let reference = parse_reference_body(body)?;
            if !text.is_empty() {
                out.push(Segment::Text(std::mem::take(&mut text).into()));
            }
            out.push(Segment::Ref(reference));
            rest = &body_start[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Segment::Text(text.into()));
    }
    Ok(out)
}

fn parse_reference_body(body: &str) -> Result<Reference, Invalid> {
    let Some((name, attribute)) = body.split_once('.') else {
        return Err(Invalid(format!("reference `${{{body}}}` needs an attribute: `${{{body}.id}}`")));
    };
    let resource = ResourceAddr::parse(name).map_err(|e| e.within(format!("in reference `${{{body}}}`")))?;
    if attribute.is_empty() || !attribute.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Invalid(format!("reference `${{{body}}}` has an invalid attribute name `{attribute}`")));
    }
    Ok(Reference { resource, attribute: attribute.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_and_embedded_references() {
        let segs = parse_segments("http://${web.host}:${web.port}/").unwrap();
        assert_eq!(segs.len(), 5);
        assert!(matches!(&segs[1], Segment::Ref(r) if r.resource.as_str() == "web" && r.attribute == "host"));
    }

    #[test]
    fn dollar_escape_is_literal() {
        let segs = parse_segments("cost $5 and $${HOME}").unwrap();
        assert_eq!(segs, vec![Segment::Text("cost $5 and ${HOME}".into())]);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(parse_segments("${web}").is_err());
        assert!(parse_segments("${web.").is_err());
        assert!(parse_segments("${we b.id}").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(ResourceAddr::parse("web-0_a").is_ok());
        assert!(ResourceAddr::parse("-web").is_err());
        assert!(ResourceAddr::parse("web.0").is_err());
    }
}

//! The `filter` query parameter of `list` and `aggregatedList`:
//! `field = value`, `field != value` (and `eq`/`ne` with a literal), clauses
//! joined by whitespace or `AND`, groups joined by `OR`, optional parentheses.
//! Fields are dotted paths into the resource (`labels.env`, `name`, `status`).
//! `eq`/`ne` take RE2 regular expressions on the real API; here only literal
//! patterns (no metacharacters) are accepted, anything else is a 400 rather
//! than a silently wrong match.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    path: Vec<String>,
    negate: bool,
    value: String,
}

/// A parsed filter: any group matches when all its clauses match.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    groups: Vec<Vec<Clause>>,
}

fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                out.push(c.to_string());
                chars.next();
            }
            '=' => {
                out.push("=".into());
                chars.next();
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("expected `!=`".into());
                }
                out.push("!=".into());
            }
            '"' | '\'' => {
                chars.next();
                let mut v = String::from("\u{0}");
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted value".into()),
                        Some(q) if q == c => break,
                        Some('\\') => v.push(chars.next().ok_or("dangling escape")?),
                        Some(x) => v.push(x),
                    }
                }
                out.push(v);
            }
            _ => {
                let mut v = String::new();
                while let Some(&x) = chars.peek() {
                    if x.is_whitespace() || "()=!".contains(x) {
                        break;
                    }
                    v.push(x);
                    chars.next();
                }
                out.push(v);
            }
        }
    }
    Ok(out)
}

impl Filter {
    pub fn parse(s: &str) -> Result<Self, String> {
        let toks = tokens(s)?;
        let mut groups = vec![Vec::new()];
        let mut i = 0;
        let mut depth = 0i32;
        while i < toks.len() {
            match toks[i].as_str() {
                "(" => depth += 1,
                ")" => {
                    depth -= 1;
                    if depth < 0 {
                        return Err("unbalanced `)`".into());
                    }
                }
                "AND" => {}
                "OR" => groups.push(Vec::new()),
                field => {
                    let op = toks.get(i + 1).ok_or_else(|| format!("`{field}` has no operator"))?;
                    let raw = toks.get(i + 2).ok_or_else(|| format!("`{field} {op}` has no value"))?;
                    let quoted = raw.starts_with('\u{0}');
                    let value = raw.trim_start_matches('\u{0}').to_string();
                    let negate = match op.as_str() {
                        "=" => false,
                        "!=" => true,
                        "eq" | "ne" => {
                            if value.chars().any(|c| ".*+?[](){}|^$\\".contains(c)) {
                                return Err(format!("regular expression `{value}`: only literal patterns are supported"));
                            }
                            op == "ne"
                        }
                        other => return Err(format!("unsupported operator `{other}`")),
                    };
                    if !quoted && ["(", ")", "=", "!="].contains(&value.as_str()) {
                        return Err(format!("`{field} {op}` has no value"));
                    }
                    groups.last_mut().expect("one group").push(Clause {
                        path: field.split('.').map(str::to_string).collect(),
                        negate,
                        value,
                    });
                    i += 3;
                    continue;
                }
            }
            i += 1;
        }
        if depth != 0 {
            return Err("unbalanced `(`".into());
        }
        if groups.iter().any(Vec::is_empty) && groups.len() > 1 {
            return Err("empty OR branch".into());
        }
        Ok(Self { groups: groups.into_iter().filter(|g| !g.is_empty()).collect() })
    }

    pub fn matches(&self, v: &Value) -> bool {
        self.groups.is_empty()
            || self.groups.iter().any(|g| {
                g.iter().all(|c| {
                    let mut cur = Some(v);
                    for p in &c.path {
                        cur = cur.and_then(|x| x.get(p));
                    }
                    let equal = match cur {
                        Some(Value::String(s)) => *s == c.value,
                        Some(Value::Null) | None => false,
                        Some(other) => other.to_string() == c.value,
                    };
                    equal != c.negate
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn labels_and_or_and_parentheses() {
        let v = json!({"name": "web-0", "labels": {"env": "staging", "role": "web"}, "status": "RUNNING"});
        assert!(Filter::parse("labels.env = staging").unwrap().matches(&v));
        assert!(Filter::parse("(labels.env = \"staging\") (labels.role = \"web\")").unwrap().matches(&v));
        assert!(!Filter::parse("labels.env = staging AND labels.role != web").unwrap().matches(&v));
        assert!(Filter::parse("(name = x) OR (name = web-0)").unwrap().matches(&v));
        assert!(!Filter::parse("labels.missing = x").unwrap().matches(&v));
        assert!(Filter::parse("name eq 'web-.*'").is_err());
        assert!(Filter::parse("labels.env =").is_err());
        assert!(Filter::parse("(labels.env = a").is_err());
    }
}

//! Typed resource schemas that providers declare and validation enforces.

use std::fmt;

use serde::Serialize;

use crate::value::{Value, is_known};

/// The type of one attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrType {
    String,
    Int,
    Float,
    Bool,
    List(Box<AttrType>),
    Map(Box<AttrType>),
    /// Any JSON-shaped value (used by `data.input`).
    Any,
}

impl fmt::Display for AttrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrType::String => f.write_str("string"),
            AttrType::Int => f.write_str("integer"),
            AttrType::Float => f.write_str("number"),
            AttrType::Bool => f.write_str("boolean"),
            AttrType::List(t) => write!(f, "list of {t}"),
            AttrType::Map(t) => write!(f, "table of {t}"),
            AttrType::Any => f.write_str("any value"),
        }
    }
}

impl AttrType {
    /// Checks a configured value. A string that still holds references is
    /// accepted for any type: its value is checked once it is known.
    pub fn check(&self, value: &Value) -> Result<(), Invalid> {
        if let Value::String(_) = value
            && !is_known(value)
            && *self != AttrType::String
        {
            return Ok(());
        }
        let ok = match (self, value) {
            (AttrType::Any, _) => true,
            (AttrType::String, Value::String(_)) => true,
            (AttrType::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (AttrType::Float, Value::Number(_)) => true,
            (AttrType::Bool, Value::Bool(_)) => true,
            (AttrType::List(inner), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    inner.check(item).map_err(|e| e.within(format!("item {i}")))?;
                }
                true
            }
            (AttrType::Map(inner), Value::Object(map)) => {
                for (k, item) in map {
                    inner.check(item).map_err(|e| e.within(format!("key `{k}`")))?;
                }
                true
            }
            _ => false,
        };
        if ok { Ok(()) } else { Err(Invalid(format!("expected {self}, found {}", describe(value)))) }
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// A check of a value beyond its type (CIDR blocks, ports, paths...).
pub type Validator = fn(&Value) -> Result<(), Invalid>;

/// Why a value was refused, in words for the user: validation puts the
/// file, line and field in front of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    /// Within `context` (`item 2`, ``key `web` ``): the same refusal, said where it is.
    pub fn within(self, context: impl fmt::Display) -> Self {
        Invalid(format!("{context}: {}", self.0))
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

impl From<Invalid> for String {
    fn from(invalid: Invalid) -> Self {
        invalid.0
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_string())
    }
}

/// One attribute of a resource type.
#[derive(Debug, Clone, Serialize)]
pub struct AttrSchema {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub ty: AttrType,
    pub description: &'static str,
    /// Must be set in the definition.
    pub required: bool,
    /// Set by the provider (ids, addresses). Computed-only attributes cannot be configured.
    pub computed: bool,
    /// May be configured; otherwise the provider computes it.
    pub optional: bool,
    /// A change replaces the resource instead of updating it in place.
    pub force_new: bool,
    /// Never written in clear text to state, plans or logs.
    pub sensitive: bool,
    /// A computed attribute that an in-place update never changes (an id, an ARN).
    /// Others are "known after apply" whenever their resource is updated.
    pub stable: bool,
    /// A computed attribute worth showing at a glance (`phoenix status` prints it
    /// under its resource): a load balancer's DNS name, healthy targets, instance counts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub highlight: bool,
    pub default: Option<Value>,
    #[serde(skip)]
    pub validator: Option<Validator>,
    /// The name of the validator's format (`aws-region`), when it has one:
    /// shown in the JSON schema so tools know what the attribute takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// Allowed values beyond the type, as data (from a kind's typed spec:
    /// an enum's variants, an integer's range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
    /// How the attribute ties its resource to others of the definition
    /// (a subnet's range inside its VPC's), checked by validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<Relation>,
    /// The part the attribute plays in placing its resource in a zone, for
    /// the [`Relation::SpreadOverZones`] of the resources that refer to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<ZoneRole>,
}

/// A rule between resources that a kind declares as data on one of its
/// attributes, so validation can hold a definition to it with no API call
/// and the core names no provider's types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// A CIDR range inside the range attribute `range` of the resource that
    /// the attribute `parent` refers to (a subnet's inside its VPC's).
    InsideRangeOf { parent: &'static str, range: &'static str },
    /// A list of references to resources in at least `min` distinct zones,
    /// as far as their [`ZoneRole`] attributes say (a load balancer's subnets).
    SpreadOverZones { min: usize },
}

/// How an attribute places its resource in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneRole {
    /// It names the zone (`availability_zone = "eu-west-1a"`).
    Named,
    /// It picks the Nth zone of the region (`az_index = 1`): equal indexes are the same zone.
    Index,
}

/// Allowed values of an attribute, as data: shown in the reference and checked by validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    OneOf(Vec<String>),
    Range { min: Option<f64>, max: Option<f64> },
}

impl Constraint {
    pub fn check(&self, value: &Value) -> Result<(), Invalid> {
        match self {
            Constraint::OneOf(allowed) => match value.as_str() {
                Some(s) if !is_known(value) || allowed.iter().any(|a| a == s) => Ok(()),
                Some(s) => Err(match closest(s, allowed.iter().map(String::as_str)) {
                    Some(c) => Invalid(format!("`{s}` is not one of {}; did you mean `{c}`?", allowed.join(", "))),
                    None => Invalid(format!("`{s}` is not one of {}", allowed.join(", "))),
                }),
                None => Ok(()),
            },
            Constraint::Range { min, max } => match value.as_f64() {
                Some(n) if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) => {
                    let bound = |b: &Option<f64>| b.map_or("…".to_string(), |b| b.to_string());
                    Err(Invalid(format!("{n} is outside {}–{}", bound(min), bound(max))))
                }
                _ => Ok(()),
            },
        }
    }
}

impl AttrSchema {
    fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self {
            name,
            ty,
            description,
            required: false,
            computed: false,
            optional: false,
            force_new: false,
            sensitive: false,
            stable: false,
            highlight: false,
            default: None,
            validator: None,
            format: None,
            constraint: None,
            relation: None,
            zone: None,
        }
    }
    pub fn required(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self { required: true, ..Self::new(name, ty, description) }
    }
    pub fn optional(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self { optional: true, ..Self::new(name, ty, description) }
    }
    pub fn computed(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self { computed: true, ..Self::new(name, ty, description) }
    }
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn stable(mut self) -> Self {
        self.stable = true;
        self
    }
    pub fn highlight(mut self) -> Self {
        self.highlight = true;
        self
    }
    pub fn default(mut self, value: Value) -> Self {
        self.default = Some(value);
        self
    }
    pub fn validate_with(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }
    /// Checks values with the named format's validator ([`validators::by_format`]),
    /// the same names a typed spec uses (`#[schemars(extend("format" = "aws-region"))]`).
    ///
    /// # Panics
    /// On a name `by_format` does not know: a bug in the schema, caught by its tests.
    pub fn format(mut self, format: &'static str) -> Self {
        let validator = validators::by_format(format).unwrap_or_else(|| panic!("no validator for format `{format}`"));
        self.validator = Some(validator);
        self.format = Some(format);
        self
    }
    /// Checks a value of the right type against the validator and the constraint.
    pub fn check_value(&self, value: &Value) -> Result<(), Invalid> {
        if let Some(check) = self.validator {
            check(value)?;
        }
        match &self.constraint {
            Some(c) => c.check(value),
            None => Ok(()),
        }
    }
    /// Whether a user may set it.
    pub fn configurable(&self) -> bool {
        self.required || self.optional
    }
}

/// A resource type, e.g. `metal.service`.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceSchema {
    pub type_name: &'static str,
    pub description: &'static str,
    pub attrs: Vec<AttrSchema>,
    /// Whether a change to a non-force-new attribute can be applied in place.
    pub update_in_place: bool,
    /// Replacement creates the new object before destroying the old one, unless the definition says otherwise.
    pub create_before_destroy: bool,
    /// Objects of this type can be found by their ownership marks after an
    /// interrupted create, so the executor journals an intent before each
    /// create. Types that leave nothing to find (commands, checks, values)
    /// skip that write.
    pub adoptable: bool,
}

impl ResourceSchema {
    pub fn attr(&self, name: &str) -> Option<&AttrSchema> {
        self.attrs.iter().find(|a| a.name == name)
    }
    /// Whether `${resource.name}` may be referenced: every attribute is readable.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }
    pub fn attr_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.attrs.iter().map(|a| a.name)
    }
}

/// Suggests the closest name for "did you mean" hints.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(wanted, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Common validators.
pub mod validators {
    use super::{Invalid, Validator, Value};

    /// The validator a typed spec names with a schema `format` (`ipv4-cidr`);
    /// formats of other meaning (`uint16`, `int64`) have none.
    pub fn by_format(format: &str) -> Option<Validator> {
        Some(match format {
            "ipv4-cidr" => ipv4_cidr,
            "port" => port,
            "http-status" => http_status,
            "non-negative" => non_negative,
            "aws-region" => aws_region,
            "aws-zone" => aws_zone,
            "aws-security-group-name" => aws_security_group_name,
            "aws-db-parameter-group-name" => aws_db_parameter_group_name,
            "aws-db-subnet-group-name" => aws_db_subnet_group_name,
            "gcp-region" => gcp_region,
            "gcp-zone" => gcp_zone,
            _ => return None,
        })
    }

    /// The text of a string value that is known (no `${...}` left), else `None`:
    /// what a format checks once the value is written out.
    fn known_text(value: &Value) -> Option<&str> {
        value.as_str().filter(|s| !s.contains("${"))
    }

    /// An AWS region's shape, `us-east-1`: a two-letter area, one or two words
    /// (`gov-west`, `southeast`), a number. Returns the length of the region
    /// prefix of `s`, if it starts with one.
    fn aws_region_prefix(s: &str) -> Option<usize> {
        let parts: Vec<&str> = s.split('-').collect();
        let word = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
        // The number may carry a zone letter (`1a`) or be followed by a local zone's words.
        for words in [1, 2] {
            let Some(last) = parts.get(1 + words) else { continue };
            let digits = last.bytes().take_while(u8::is_ascii_digit).count();
            if parts[0].len() == 2 && word(parts[0]) && parts[1..=words].iter().all(|p| word(p)) && digits > 0 {
                return Some(parts[..=words].iter().map(|p| p.len() + 1).sum::<usize>() + digits);
            }
        }
        None
    }

    /// An AWS region such as `us-east-1` or `eu-west-1`.
    pub fn aws_region(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        if aws_region_prefix(s) == Some(s.len()) {
            Ok(())
        } else {
            Err(Invalid(format!("`{s}` is not an AWS region like `us-east-1` or `eu-west-1`")))
        }
    }

    /// An AWS availability zone: a region and a letter (`us-east-1a`), or a
    /// Local Zone (`us-west-2-lax-1a`).
    pub fn aws_zone(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        let ok = aws_region_prefix(s).is_some_and(|n| {
            let rest = &s[n..];
            (rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_lowercase()))
                || (rest.len() > 1
                    && rest.starts_with('-')
                    && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !rest.ends_with('-'))
        });
        if ok {
            Ok(())
        } else if aws_region_prefix(s) == Some(s.len()) {
            Err(Invalid(format!("`{s}` is a region, not an availability zone; add the zone's letter, e.g. `{s}a`")))
        } else {
            Err(Invalid(format!("`{s}` is not an AWS availability zone like `us-east-1a`")))
        }
    }

    /// An EC2 security group name: 1-255 characters of EC2's VPC set, not starting with `sg-`.
    pub fn aws_security_group_name(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        const PUNCTUATION: &str = " ._-:/()#,@[]+=&;{}!$*";
        if s.is_empty() || s.len() > 255 {
            return Err(Invalid(format!("a security group name is 1-255 characters, `{s}` has {}", s.len())));
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_alphanumeric() && !PUNCTUATION.contains(*c)) {
            return Err(Invalid(format!(
                "`{s}`: a security group name cannot contain `{c}` (letters, digits, spaces and {PUNCTUATION} only)"
            )));
        }
        if s.to_ascii_lowercase().starts_with("sg-") {
            return Err(Invalid(format!("`{s}`: a security group name cannot start with `sg-` (that is how ids look)")));
        }
        Ok(())
    }

    /// An RDS parameter group name: 1-255 letters, digits and single hyphens, starting with a letter.
    pub fn aws_db_parameter_group_name(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        let ok = (1..=255).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.ends_with('-')
            && !s.contains("--");
        if ok {
            Ok(())
        } else {
            Err(Invalid(format!("`{s}` is not a DB parameter group name: letters, digits and single hyphens, starting with a letter")))
        }
    }

    /// An RDS subnet group name: 1-255 letters, digits, spaces, `.`, `_` and `-`; not `default`.
    pub fn aws_db_subnet_group_name(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        if s.eq_ignore_ascii_case("default") {
            return Err("`default` is reserved for the VPC's default DB subnet group; pick another name".into());
        }
        let ok = (1..=255).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c));
        if ok { Ok(()) } else { Err(Invalid(format!("`{s}` is not a DB subnet group name: letters, digits, spaces, `.`, `_` and `-`"))) }
    }

    /// A GCP region's shape: `us-central1`, `europe-west4`.
    fn is_gcp_region(s: &str) -> bool {
        let Some((area, place)) = s.split_once('-') else { return false };
        let letters = place.bytes().take_while(u8::is_ascii_lowercase).count();
        !area.is_empty()
            && area.bytes().all(|b| b.is_ascii_lowercase())
            && letters > 0
            && letters < place.len()
            && place[letters..].bytes().all(|b| b.is_ascii_digit())
    }

    /// A GCP region such as `us-central1` or `europe-west4`.
    pub fn gcp_region(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        if is_gcp_region(s) {
            return Ok(());
        }
        match s.rsplit_once('-') {
            Some((region, zone)) if is_gcp_region(region) && zone.len() == 1 => {
                Err(Invalid(format!("`{s}` is a zone, not a region; its region is `{region}`")))
            }
            _ => Err(Invalid(format!("`{s}` is not a GCP region like `us-central1` or `europe-west4`"))),
        }
    }

    /// A GCP zone: a region and a letter, `us-central1-a`.
    pub fn gcp_zone(value: &Value) -> Result<(), Invalid> {
        let Some(s) = known_text(value) else { return Ok(()) };
        match s.rsplit_once('-') {
            Some((region, zone)) if is_gcp_region(region) && zone.len() == 1 && zone.bytes().all(|b| b.is_ascii_lowercase()) => Ok(()),
            _ if is_gcp_region(s) => Err(Invalid(format!("`{s}` is a region, not a zone; add the zone's letter, e.g. `{s}-a`"))),
            _ => Err(Invalid(format!("`{s}` is not a GCP zone like `us-central1-a`"))),
        }
    }

    /// An IPv4 CIDR block such as `10.0.0.0/16`.
    pub fn ipv4_cidr(value: &Value) -> Result<(), Invalid> {
        let Some(s) = value.as_str() else { return Ok(()) };
        if s.contains("${") {
            return Ok(());
        }
        let err = || format!("`{s}` is not an IPv4 CIDR block like `10.0.0.0/16`");
        let (ip, len) = s.split_once('/').ok_or_else(err)?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| err())?;
        let len: u32 = len.parse().map_err(|_| err())?;
        if len > 32 {
            return Err(Invalid(format!("`{s}`: prefix length {len} is larger than 32")));
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        if u32::from(ip) & !mask != 0 {
            return Err(Invalid(format!(
                "`{s}` has host bits set; the network address is `{}/{len}`",
                std::net::Ipv4Addr::from(u32::from(ip) & mask)
            )));
        }
        Ok(())
    }

    /// A list of IPv4 CIDR blocks (firewall source ranges).
    pub fn ipv4_cidr_list(value: &Value) -> Result<(), Invalid> {
        let Some(items) = value.as_array() else { return Ok(()) };
        items.iter().enumerate().try_for_each(|(i, item)| ipv4_cidr(item).map_err(|e| e.within(format!("item {i}"))))
    }

    /// A port or an ordered port range as firewall rules write them: `80`, `8000-8080`.
    pub fn port_spec(s: &str) -> Result<(), Invalid> {
        if s.contains("${") {
            return Ok(());
        }
        let port = |p: &str| p.trim().parse::<u32>().ok().filter(|p| *p <= 65535);
        match s.split_once('-') {
            None => port(s).map(|_| ()).ok_or_else(|| Invalid(format!("`{s}` is not a port (0-65535) or a range like `8000-8080`"))),
            Some((a, b)) => match (port(a), port(b)) {
                (Some(a), Some(b)) if a <= b => Ok(()),
                (Some(a), Some(b)) => Err(Invalid(format!("port range `{s}` is backwards: {a} is above {b}"))),
                _ => Err(Invalid(format!("`{s}` is not a port range like `8000-8080` (ports are 0-65535)"))),
            },
        }
    }

    /// Firewall allow rules: `[{ protocol = "tcp", ports = ["80", "8000-8080"] }]`.
    pub fn allow_rules(value: &Value) -> Result<(), Invalid> {
        const PROTOCOLS: [&str; 8] = ["tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"];
        const WITH_PORTS: [&str; 3] = ["tcp", "udp", "sctp"];
        let Some(rules) = value.as_array() else { return Ok(()) };
        for (i, rule) in rules.iter().enumerate() {
            let Some(rule) = rule.as_object() else {
                return Err(Invalid(format!("item {i}: expected a table like {{ protocol = \"tcp\", ports = [\"80\"] }}")));
            };
            if let Some(k) = rule.keys().find(|k| *k != "protocol" && *k != "ports") {
                return Err(Invalid(format!("item {i}: unknown key `{k}` (a rule takes `protocol` and `ports`)")));
            }
            let protocol = match rule.get("protocol") {
                Some(Value::String(p)) if p.contains("${") => continue,
                Some(Value::String(p)) if PROTOCOLS.contains(&p.as_str()) || p.parse::<u8>().is_ok() => p.as_str(),
                Some(Value::String(p)) => {
                    return Err(Invalid(format!("item {i}: unknown protocol `{p}` (use {} or a number)", PROTOCOLS.join(", "))));
                }
                _ => return Err(Invalid(format!("item {i}: `protocol` is required, e.g. \"tcp\""))),
            };
            let Some(ports) = rule.get("ports") else { continue };
            if !WITH_PORTS.contains(&protocol) {
                return Err(Invalid(format!("item {i}: protocol `{protocol}` has no ports")));
            }
            let Some(ports) = ports.as_array() else {
                return Err(Invalid(format!("item {i}: `ports` is a list of strings like [\"80\", \"8000-8080\"]")));
            };
            for p in ports {
                let text = p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string());
                port_spec(&text).map_err(|e| format!("item {i}: {e}"))?;
            }
        }
        Ok(())
    }

    /// A TCP/UDP port.
    pub fn port(value: &Value) -> Result<(), Invalid> {
        match value.as_i64() {
            Some(p) if (1..=65535).contains(&p) => Ok(()),
            Some(p) => Err(Invalid(format!("port {p} is outside 1-65535"))),
            None => Ok(()),
        }
    }

    /// An HTTP status code.
    pub fn http_status(value: &Value) -> Result<(), Invalid> {
        match value.as_i64() {
            Some(p) if (100..=599).contains(&p) => Ok(()),
            Some(p) => Err(Invalid(format!("{p} is not an HTTP status code (100-599)"))),
            None => Ok(()),
        }
    }

    /// A non-negative number.
    pub fn non_negative(value: &Value) -> Result<(), Invalid> {
        match value.as_f64() {
            Some(n) if n < 0.0 => Err(Invalid(format!("{n} must not be negative"))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn types_check_values() {
        assert!(AttrType::Int.check(&json!(3)).is_ok());
        assert!(AttrType::Int.check(&json!("3")).is_err());
        assert!(AttrType::Int.check(&json!("${x.port}")).is_ok());
        assert!(AttrType::List(Box::new(AttrType::String)).check(&json!(["a", 1])).is_err());
        assert!(AttrType::Map(Box::new(AttrType::String)).check(&json!({"a": "b"})).is_ok());
    }

    #[test]
    fn cidr_validation() {
        use validators::ipv4_cidr;
        assert!(ipv4_cidr(&json!("10.0.0.0/16")).is_ok());
        assert!(ipv4_cidr(&json!("10.0.0.0/33")).is_err());
        assert!(ipv4_cidr(&json!("10.0.0.1/16")).is_err());
        assert!(ipv4_cidr(&json!("300.0.0.0/8")).is_err());
        assert!(ipv4_cidr(&json!("10.0.0.0")).is_err());
    }

    #[test]
    fn region_and_zone_shapes() {
        use validators::{aws_region, aws_zone, gcp_region, gcp_zone};
        for ok in ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "il-central-1"] {
            assert!(aws_region(&json!(ok)).is_ok(), "{ok}");
            assert!(aws_zone(&json!(format!("{ok}a"))).is_ok(), "{ok}a");
        }
        assert!(aws_zone(&json!("us-west-2-lax-1a")).is_ok());
        for bad in ["us-east", "useast1", "us-east-1a", "US-EAST-1", "eu-west-1 ", "europe-west1", ""] {
            assert!(aws_region(&json!(bad)).is_err(), "{bad}");
        }
        assert!(aws_zone(&json!("us-east-1")).unwrap_err().0.contains("is a region"));
        for bad in ["us-east-1-", "us-east-1ab", "us-central1-a", "us-east-1A"] {
            assert!(aws_zone(&json!(bad)).is_err(), "{bad}");
        }
        for ok in ["us-central1", "europe-west4", "northamerica-northeast1", "me-central2"] {
            assert!(gcp_region(&json!(ok)).is_ok(), "{ok}");
            assert!(gcp_zone(&json!(format!("{ok}-b"))).is_ok(), "{ok}-b");
        }
        assert!(gcp_region(&json!("us-central1-a")).unwrap_err().0.contains("its region is `us-central1`"));
        assert!(gcp_zone(&json!("us-central1")).unwrap_err().0.contains("is a region"));
        for bad in ["us-east-1", "uscentral1", "us-central", "us-central1-ab", "us-central1-"] {
            assert!(gcp_region(&json!(bad)).is_err(), "{bad}");
            assert!(gcp_zone(&json!(bad)).is_err(), "{bad}");
        }
        assert!(aws_region(&json!("${var.region}")).is_ok() && gcp_zone(&json!("${x.zone}")).is_ok());
    }

    #[test]
    fn security_group_names() {
        use validators::aws_security_group_name as check;
        assert!(check(&json!("web (public) #1")).is_ok());
        assert!(check(&json!("sg-web")).is_err());
        assert!(check(&json!("web%")).is_err());
        assert!(check(&json!("")).is_err());
        assert!(check(&json!("x".repeat(256))).is_err());
    }

    #[test]
    fn rds_group_names() {
        use validators::{aws_db_parameter_group_name as params, aws_db_subnet_group_name as subnets};
        assert!(params(&json!("app-mysql8")).is_ok());
        for bad in ["8app", "app--x", "app-", "app_x", ""] {
            assert!(params(&json!(bad)).is_err(), "{bad}");
        }
        assert!(subnets(&json!("app db.subnets_1")).is_ok());
        assert!(subnets(&json!("default")).is_err() && subnets(&json!("a/b")).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("comand", ["command", "destroy"]), Some("command"));
        assert_eq!(closest("zzz", ["command", "destroy"]), None);
    }
}

//! The metal resource types' names and the validators their specs name
//! with a `format` keyword ([`FORMATS`]); the schemas themselves are derived
//! from each kind's `Spec` and `Outputs`.

use phoenix_core::schema::{Invalid, ResourceSchema, Validator};
use phoenix_core::value::Value;

use crate::config::{BOOKKEEPING_DIR, relative_parts};

pub const FILE: &str = "metal.file";
pub const SERVICE: &str = "metal.service";
pub const EXEC: &str = "metal.exec";
pub const HTTP_CHECK: &str = "metal.http_check";
pub const MACHINE: &str = "metal.machine";

/// Boot sources a one-time override may name (DMTF `BootSourceOverrideTarget`).
pub const BOOT_TARGETS: &[&str] =
    &["Pxe", "Cd", "Hdd", "Usb", "UefiHttp", "UefiTarget", "BiosSetup", "Diags", "Utilities", "SDCard", "Floppy", "RemoteDrive"];

/// The `format` keywords of metal specs and what checks them.
pub(crate) const FORMATS: &[(&str, Validator)] = &[
    ("resource-path", resource_path),
    ("workdir", workdir),
    ("octal-mode", octal_mode),
    ("http-url", http_url),
    ("owner", owner_spec),
    ("restart-policy", restart_policy),
    ("check-from", check_from),
    ("boot-target", boot_target),
    ("image-url", image_url),
    ("positive", positive),
];

/// Every metal schema.
pub fn all() -> Vec<ResourceSchema> {
    crate::kinds().schemas()
}

fn has_reference(s: &str) -> bool {
    s.contains("${")
}

/// A relative path may not climb out of the root nor into Phoenix's bookkeeping directory.
pub fn resource_path(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) {
        return Ok(());
    }
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    if s.starts_with('/') {
        return Ok(());
    }
    let rel = relative_parts(s)?;
    if rel.as_os_str().is_empty() {
        return Err(Invalid(format!("`{s}` names the root directory itself, not a file")));
    }
    if rel.components().next().is_some_and(|c| c.as_os_str() == BOOKKEEPING_DIR) {
        return Err(Invalid(format!("`{s}` is inside `{BOOKKEEPING_DIR}`, which Phoenix keeps for pid files and logs")));
    }
    Ok(())
}

/// A working directory: relative ones may not climb out of the root.
pub fn workdir(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) || s.starts_with('/') {
        return Ok(());
    }
    relative_parts(s).map(|_| ())
}

/// Permission bits in octal, like `0644` or `755`.
pub fn octal_mode(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) {
        return Ok(());
    }
    parse_mode(s).map(|_| ())
}

pub fn parse_mode(s: &str) -> Result<u32, Invalid> {
    let err = || Invalid(format!("`{s}` is not a file mode: use 3 or 4 octal digits like \"0644\""));
    if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(err());
    }
    u32::from_str_radix(s, 8).map_err(|_| err())
}

/// An `http://` URL (this build has no TLS).
pub fn http_url(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) {
        return Ok(());
    }
    if s.starts_with("https://") {
        return Err(Invalid(format!("`{s}`: https is not supported by metal.http_check yet; use http://")));
    }
    if !s.starts_with("http://") {
        return Err(Invalid(format!("`{s}` is not an http:// URL")));
    }
    Ok(())
}

/// `user` or `user:group`: POSIX-ish names or numeric ids.
fn owner_spec(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) {
        return Ok(());
    }
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 32
            && (n.bytes().all(|b| b.is_ascii_digit())
                || (n.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                    && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-' || b == b'.')))
    };
    let ok = match s.split_once(':') {
        Some((u, g)) => name_ok(u) && name_ok(g),
        None => name_ok(s),
    };
    if ok { Ok(()) } else { Err(Invalid(format!("`{s}` is not an owner: use `user` or `user:group` (names or numeric ids)"))) }
}

fn restart_policy(value: &Value) -> Result<(), Invalid> {
    match value.as_str() {
        None | Some("on-failure" | "always" | "no") => Ok(()),
        Some(s) if has_reference(s) => Ok(()),
        Some(s) => Err(Invalid(format!("`{s}`: use \"on-failure\", \"always\" or \"no\""))),
    }
}

fn check_from(value: &Value) -> Result<(), Invalid> {
    match value.as_str() {
        None | Some("phoenix" | "host") => Ok(()),
        Some(s) if has_reference(s) => Ok(()),
        Some(s) => Err(Invalid(format!("`{s}`: use \"phoenix\" or \"host\""))),
    }
}

fn boot_target(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) || BOOT_TARGETS.contains(&s) {
        return Ok(());
    }
    Err(Invalid(format!("`{s}` is not a Redfish boot source; use one of {}", BOOT_TARGETS.join(", "))))
}

/// An image URL a BMC can download.
fn image_url(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) || s.starts_with("http://") || s.starts_with("https://") {
        return Ok(());
    }
    Err(Invalid(format!("`{s}` is not an http(s):// URL the BMC can download")))
}

fn positive(value: &Value) -> Result<(), Invalid> {
    match value.as_i64() {
        Some(n) if n <= 0 => Err(Invalid(format!("{n} must be greater than 0"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validators() {
        assert!(octal_mode(&json!("0644")).is_ok());
        assert!(octal_mode(&json!("755")).is_ok());
        assert!(octal_mode(&json!("0855")).is_err());
        assert!(octal_mode(&json!("rw-r--r--")).is_err());
        assert!(resource_path(&json!("a/b.txt")).is_ok());
        assert!(resource_path(&json!("../b.txt")).unwrap_err().0.contains("escapes"));
        assert!(resource_path(&json!(".")).is_err());
        assert!(resource_path(&json!(".phoenix-metal/x")).is_err());
        assert!(resource_path(&json!("${dir.path}/x")).is_ok());
        assert!(http_url(&json!("http://127.0.0.1:80/")).is_ok());
        assert!(http_url(&json!("https://example.com")).is_err());
        assert!(owner_spec(&json!("www-data")).is_ok() && owner_spec(&json!("nobody:nogroup")).is_ok());
        assert!(owner_spec(&json!("0:0")).is_ok() && owner_spec(&json!("Root")).is_err() && owner_spec(&json!("a:b:c")).is_err());
        assert!(restart_policy(&json!("always")).is_ok() && restart_policy(&json!("sometimes")).is_err());
    }

    #[test]
    fn every_type_has_a_host_and_descriptions() {
        // A machine is not placed on a host: it is one (its `name` is the `host` of what runs on it).
        for s in all().into_iter().filter(|s| s.type_name != MACHINE) {
            let h = s.attr("host").unwrap();
            assert!(h.force_new && h.default == Some(json!("local")));
            assert!(s.attrs.iter().all(|a| !a.description.is_empty()));
        }
        let m = all().into_iter().find(|s| s.type_name == MACHINE).unwrap();
        assert!(m.attr("host").is_none() && m.adoptable && m.attrs.iter().all(|a| !a.description.is_empty()));
        assert!(m.attrs.iter().filter(|a| a.computed).all(|a| a.stable || a.name == "power_state" || a.name == "boot_target"));
        assert!(boot_target(&json!("Pxe")).is_ok() && boot_target(&json!("pxe")).is_err());
        assert!(image_url(&json!("http://127.0.0.1/x.iso")).is_ok() && image_url(&json!("/x.iso")).is_err());
    }

    #[test]
    fn derived_schemas_keep_every_validator_and_add_no_constraint() {
        let validated = [
            ("metal.file", "path"),
            ("metal.file", "mode"),
            ("metal.file", "owner"),
            ("metal.service", "workdir"),
            ("metal.service", "stop_timeout_secs"),
            ("metal.service", "restart"),
            ("metal.exec", "workdir"),
            ("metal.exec", "timeout_secs"),
            ("metal.http_check", "url"),
            ("metal.http_check", "expect_status"),
            ("metal.http_check", "timeout_secs"),
            ("metal.http_check", "interval_ms"),
            ("metal.http_check", "from"),
            ("metal.machine", "boot_override"),
            ("metal.machine", "image"),
            ("metal.machine", "wait_ssh_secs"),
            ("metal.machine", "power_timeout_secs"),
        ];
        for s in all() {
            for a in &s.attrs {
                let want = validated.contains(&(s.type_name, a.name));
                assert_eq!(a.validator.is_some(), want, "`{}.{}` validator", s.type_name, a.name);
                assert!(a.constraint.is_none(), "`{}.{}` gained a constraint", s.type_name, a.name);
            }
        }
        let attr = |t: &str, n: &str| all().into_iter().find(|s| s.type_name == t).and_then(|s| s.attr(n).cloned()).unwrap();
        assert!(attr("metal.file", "mode").check_value(&json!("0855")).is_err());
        assert!(attr("metal.machine", "wait_ssh_secs").check_value(&json!(0)).is_err());
        assert!(attr("metal.service", "stop_timeout_secs").check_value(&json!(-1)).is_err());
        assert!(attr("metal.http_check", "expect_status").check_value(&json!(700)).is_err());
        assert!(attr("metal.service", "environment").sensitive && attr("metal.exec", "environment").sensitive);
    }
}

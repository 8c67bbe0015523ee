//! The typed schemas of the metal resource types.

use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::Value;
use serde_json::json;

use crate::config::{BOOKKEEPING_DIR, DEFAULT_HOST, relative_parts};

pub const FILE: &str = "metal.file";
pub const SERVICE: &str = "metal.service";
pub const EXEC: &str = "metal.exec";
pub const HTTP_CHECK: &str = "metal.http_check";
pub const MACHINE: &str = "metal.machine";

/// Boot sources a one-time override may name (DMTF `BootSourceOverrideTarget`).
pub const BOOT_TARGETS: &[&str] =
    &["Pxe", "Cd", "Hdd", "Usb", "UefiHttp", "UefiTarget", "BiosSetup", "Diags", "Utilities", "SDCard", "Floppy", "RemoteDrive"];

fn host() -> AttrSchema {
    AttrSchema::optional("host", AttrType::String, "the host it lives on: a name under [providers.metal.hosts]")
        .default(json!(DEFAULT_HOST))
        .force_new()
}

fn string_map() -> AttrType {
    AttrType::Map(Box::new(AttrType::String))
}

fn any_map() -> AttrType {
    AttrType::Map(Box::new(AttrType::Any))
}

fn has_reference(s: &str) -> bool {
    s.contains("${")
}

/// A relative path may not climb out of the root nor into Phoenix's bookkeeping directory.
pub fn resource_path(value: &Value) -> Result<(), String> {
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
        return Err(format!("`{s}` names the root directory itself, not a file"));
    }
    if rel.components().next().is_some_and(|c| c.as_os_str() == BOOKKEEPING_DIR) {
        return Err(format!("`{s}` is inside `{BOOKKEEPING_DIR}`, which Phoenix keeps for pid files and logs"));
    }
    Ok(())
}

/// A working directory: relative ones may not climb out of the root.
pub fn workdir(value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) || s.starts_with('/') {
        return Ok(());
    }
    relative_parts(s).map(|_| ())
}

/// Permission bits in octal, like `0644` or `755`.
pub fn octal_mode(value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) {
        return Ok(());
    }
    parse_mode(s).map(|_| ())
}

pub fn parse_mode(s: &str) -> Result<u32, String> {
    let err = || format!("`{s}` is not a file mode: use 3 or 4 octal digits like \"0644\"");
    if !(3..=4).contains(&s.len()) || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(err());
    }
    u32::from_str_radix(s, 8).map_err(|_| err())
}

/// An `http://` URL (this build has no TLS).
pub fn http_url(value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) {
        return Ok(());
    }
    if s.starts_with("https://") {
        return Err(format!("`{s}`: https is not supported by metal.http_check yet; use http://"));
    }
    if !s.starts_with("http://") {
        return Err(format!("`{s}` is not an http:// URL"));
    }
    Ok(())
}

/// `user` or `user:group`: POSIX-ish names or numeric ids.
fn owner_spec(value: &Value) -> Result<(), String> {
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
    if ok { Ok(()) } else { Err(format!("`{s}` is not an owner: use `user` or `user:group` (names or numeric ids)")) }
}

fn restart_policy(value: &Value) -> Result<(), String> {
    match value.as_str() {
        None | Some("on-failure" | "always" | "no") => Ok(()),
        Some(s) if has_reference(s) => Ok(()),
        Some(s) => Err(format!("`{s}`: use \"on-failure\", \"always\" or \"no\"")),
    }
}

fn check_from(value: &Value) -> Result<(), String> {
    match value.as_str() {
        None | Some("phoenix" | "host") => Ok(()),
        Some(s) if has_reference(s) => Ok(()),
        Some(s) => Err(format!("`{s}`: use \"phoenix\" or \"host\"")),
    }
}

fn boot_target(value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) || BOOT_TARGETS.contains(&s) {
        return Ok(());
    }
    Err(format!("`{s}` is not a Redfish boot source; use one of {}", BOOT_TARGETS.join(", ")))
}

/// An image URL a BMC can download.
fn image_url(value: &Value) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if has_reference(s) || s.starts_with("http://") || s.starts_with("https://") {
        return Ok(());
    }
    Err(format!("`{s}` is not an http(s):// URL the BMC can download"))
}

fn machine() -> ResourceSchema {
    ResourceSchema {
        type_name: MACHINE,
        description: "Claims a machine of the inventory by labels (a claim file on the machine keeps other environments off it), powers it on through its BMC and optionally re-images it; destroy wipes and releases it",
        attrs: vec![
            AttrSchema::optional("labels", string_map(), "labels the machine must carry, all of them (e.g. { role = \"web\" })")
                .force_new(),
            AttrSchema::optional("machine", AttrType::String, "a specific machine of the inventory, by name").force_new(),
            AttrSchema::optional(
                "boot_override",
                AttrType::String,
                "re-image: a one-time boot source (Pxe, Cd...) set through the BMC, then a restart",
            )
            .force_new()
            .validate_with(boot_target),
            AttrSchema::optional(
                "image",
                AttrType::String,
                "re-image: an ISO URL inserted as virtual media (boots from Cd unless boot_override says otherwise)",
            )
            .force_new()
            .validate_with(image_url),
            AttrSchema::optional(
                "wipe_commands",
                AttrType::List(Box::new(AttrType::String)),
                "commands run over SSH on release, after the inventory's `wipe`",
            ),
            AttrSchema::optional("wait_ssh_secs", AttrType::Int, "how long to wait for SSH after a power-on or restart")
                .default(json!(300))
                .validate_with(positive),
            AttrSchema::optional("power_timeout_secs", AttrType::Int, "how long to wait for the BMC to report a power change")
                .default(json!(120))
                .validate_with(positive),
            AttrSchema::computed("name", AttrType::String, "the claimed machine: use it as `host` of the resources deployed on it")
                .stable(),
            AttrSchema::computed("address", AttrType::String, "its SSH address").stable(),
            AttrSchema::computed("ssh_user", AttrType::String, "the user Phoenix logs in as").stable(),
            AttrSchema::computed("root", AttrType::String, "where relative paths of resources on it live").stable(),
            AttrSchema::computed("claim", AttrType::String, "the owner recorded in the machine's claim file").stable(),
            AttrSchema::computed("bmc_url", AttrType::String, "its BMC, empty when it has none").stable(),
            AttrSchema::computed("power_state", AttrType::String, "as the BMC reports it (`unmanaged` without a BMC)"),
            AttrSchema::computed("boot_target", AttrType::String, "the boot override the BMC reports"),
        ],
        // Only the wipe commands and timeouts change in place; anything else is another claim.
        update_in_place: true,
        create_before_destroy: false,
        // an interrupted create leaves a claim file naming this resource.
        adoptable: true,
    }
}

fn positive(value: &Value) -> Result<(), String> {
    match value.as_i64() {
        Some(n) if n <= 0 => Err(format!("{n} must be greater than 0")),
        _ => Ok(()),
    }
}

pub fn all() -> Vec<ResourceSchema> {
    vec![
        ResourceSchema {
            type_name: FILE,
            description: "A file with the given content, written atomically; relative paths live under the provider root",
            attrs: vec![
                host(),
                AttrSchema::required(
                    "path",
                    AttrType::String,
                    "where the file goes; relative paths are under the provider root and may not leave it",
                )
                .force_new()
                .validate_with(resource_path),
                AttrSchema::required("content", AttrType::String, "the file's content"),
                AttrSchema::optional("mode", AttrType::String, "permission bits in octal, like \"0644\"")
                    .default(json!("0644"))
                    .validate_with(octal_mode),
                AttrSchema::optional(
                    "owner",
                    AttrType::String,
                    "`user` or `user:group` (names or ids) the file is given before it appears; needs the rights to chown",
                )
                .validate_with(owner_spec),
                AttrSchema::computed(
                    "sha256",
                    AttrType::String,
                    "SHA-256 of the content (hex): reference it to restart a service when the file changes",
                ),
                AttrSchema::computed("abs_path", AttrType::String, "the absolute path of the file on its host").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            // a written file is found at its path.
            adoptable: true,
        },
        ResourceSchema {
            type_name: SERVICE,
            description: "A long-running command: a systemd unit (written, enabled, started) on hosts that run systemd, else a supervised process in its own process group; logged to a file and marked with PHOENIX_OWNER",
            attrs: vec![
                host(),
                AttrSchema::required(
                    "command",
                    AttrType::String,
                    "the command line, run with `sh -c` (use `exec` to avoid an extra shell)",
                ),
                AttrSchema::optional("workdir", AttrType::String, "working directory; relative to the provider root, which is the default")
                    .validate_with(workdir),
                AttrSchema::optional("environment", string_map(), "extra environment variables").sensitive(),
                AttrSchema::optional(
                    "restart_on",
                    any_map(),
                    "any change to these values restarts the service (e.g. a config file's sha256)",
                ),
                AttrSchema::optional("stop_timeout_secs", AttrType::Int, "seconds between SIGTERM and SIGKILL when stopping")
                    .default(json!(10))
                    .validate_with(validators::non_negative),
                AttrSchema::optional(
                    "restart",
                    AttrType::String,
                    "when the command is started again after it ends: \"on-failure\" (the default), \"always\" or \"no\"",
                )
                .default(json!("on-failure"))
                .validate_with(restart_policy),
                AttrSchema::computed("pid", AttrType::Int, "the main process id (for a process: also its process group id)"),
                AttrSchema::computed("manager", AttrType::String, "what runs it: \"systemd\" or \"process\" (chosen by the host's `init`)")
                    .stable(),
                AttrSchema::computed("unit", AttrType::String, "the systemd unit's name (empty for a process)").stable(),
                AttrSchema::computed("log_path", AttrType::String, "where stdout and stderr are appended").stable(),
                AttrSchema::computed(
                    "owner",
                    AttrType::String,
                    "the PHOENIX_OWNER mark in the process's environment: how Phoenix finds it again",
                )
                .stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            // a started service is found by PHOENIX_OWNER.
            adoptable: true,
        },
        ResourceSchema {
            type_name: EXEC,
            description: "Commands run on create, update and destroy (deployment hooks); fails on a non-zero exit",
            attrs: vec![
                host(),
                AttrSchema::required("command", AttrType::String, "run with `sh -c` on create (and on update without `update_command`)"),
                AttrSchema::optional("update_command", AttrType::String, "run on update instead of `command`"),
                AttrSchema::optional(
                    "destroy_command",
                    AttrType::String,
                    "run on destroy; it gets `environment` only if it is not sealed in state",
                ),
                AttrSchema::optional("environment", string_map(), "extra environment variables").sensitive(),
                AttrSchema::optional("workdir", AttrType::String, "working directory; relative to the provider root, which is the default")
                    .validate_with(workdir),
                AttrSchema::optional("triggers", any_map(), "any change replaces the resource (runs `destroy_command`, then `command`)")
                    .force_new(),
                AttrSchema::optional(
                    "timeout_secs",
                    AttrType::Int,
                    "the command's process group is killed after this many seconds (0: no limit)",
                )
                .default(json!(300))
                .validate_with(validators::non_negative),
                AttrSchema::computed("exit_code", AttrType::Int, "the exit code of the last run (0)"),
                AttrSchema::computed("stdout", AttrType::String, "the last 4 KiB of standard output, trimmed"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            // commands leave nothing to find: they run again.
            adoptable: false,
        },
        ResourceSchema {
            type_name: HTTP_CHECK,
            description: "Waits until an HTTP GET returns the expected status (and body text), made from the machine running Phoenix or from the host",
            attrs: vec![
                host(),
                AttrSchema::required("url", AttrType::String, "an http:// URL to GET").validate_with(http_url),
                AttrSchema::optional("expect_status", AttrType::Int, "the status that passes")
                    .default(json!(200))
                    .validate_with(validators::http_status),
                AttrSchema::optional("contains", AttrType::String, "text the response body must contain"),
                AttrSchema::optional("timeout_secs", AttrType::Int, "give up after this many seconds")
                    .default(json!(60))
                    .validate_with(positive),
                AttrSchema::optional("interval_ms", AttrType::Int, "milliseconds between attempts")
                    .default(json!(250))
                    .validate_with(positive),
                AttrSchema::optional(
                    "from",
                    AttrType::String,
                    "where the GET is made: \"phoenix\" (this machine, the default) or \"host\" (on the resource's host, with curl)",
                )
                .validate_with(check_from),
                AttrSchema::computed("status", AttrType::Int, "the status of the passing response"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            // checks leave nothing to find.
            adoptable: false,
        },
        machine(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(octal_mode(&json!("0644")).is_ok());
        assert!(octal_mode(&json!("755")).is_ok());
        assert!(octal_mode(&json!("0855")).is_err());
        assert!(octal_mode(&json!("rw-r--r--")).is_err());
        assert!(resource_path(&json!("a/b.txt")).is_ok());
        assert!(resource_path(&json!("../b.txt")).unwrap_err().contains("escapes"));
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
}

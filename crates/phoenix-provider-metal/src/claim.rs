//! Claims: which environment holds a machine, recorded on the machine itself.
//!
//! State is per environment, so state alone cannot stop two environments
//! from taking one machine. The claim is therefore a small JSON file in the
//! machine's root (`<root>/.phoenix-claim.json`), created atomically with
//! `ln` (link(2) fails if the name exists, on every POSIX filesystem): of two
//! environments racing for a machine exactly one wins. The same owner key is
//! kept in state (`claim`), so a run knows what it holds; the file tells every
//! other environment, checkout or instance that the machine is taken. Release
//! removes the file only if it still names this owner.

use std::path::Path;
use std::sync::Mutex;

use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;
use serde::{Deserialize, Serialize};

use crate::ssh::shell::qpath;
use crate::transport::{ExecSpec, OutputStream, Transport};

/// The environment variable the claim script reads the claim from.
const CLAIM_ENV: &str = "PHOENIX_CLAIM";

/// The content of a claim file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// `Ownership::key()`: environment, instance, resource and state lineage.
    pub owner: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub resource: String,
    /// Unix seconds.
    pub claimed_at: u64,
}

impl Claim {
    pub fn new(o: &Ownership) -> Self {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        Self {
            owner: o.key(),
            environment: o.environment.clone(),
            instance: o.instance.clone(),
            resource: o.resource.to_string(),
            claimed_at: now,
        }
    }
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Ours now (or already: a retried create).
    Ours,
    /// Someone else's: who, as the file says.
    Taken(String),
}

/// The script: link a complete temporary file to the claim name, or report the holder.
fn claim_script(path: &Path) -> String {
    let dir = path.parent().map(qpath).unwrap_or_else(|| "/".into());
    format!(
        "set -e\nmkdir -p {dir}\nt=$(mktemp {dir}/.phoenix-claim.XXXXXX)\nprintf '%s\\n' \"${CLAIM_ENV}\" > \"$t\"\nchmod 644 \"$t\"\n\
         if ln \"$t\" {p} 2>/dev/null; then rm -f \"$t\"; echo claimed; else rm -f \"$t\"; echo taken; cat {p}; fi\n",
        p = qpath(path),
    )
}

/// Who holds a claim file's machine, for messages.
fn holder(text: &str) -> String {
    match serde_json::from_str::<Claim>(text.trim()) {
        Ok(c) => c.owner,
        Err(_) => format!("an unreadable claim ({})", text.trim().chars().take(80).collect::<String>()),
    }
}

/// Tries to claim the machine behind `t`.
pub async fn claim(t: &dyn Transport, path: &Path, claim: &Claim) -> Result<Outcome, ProviderError> {
    let json = serde_json::to_string(claim).map_err(|e| ProviderError::permanent(e.to_string()))?;
    let spec = ExecSpec {
        command: claim_script(path),
        workdir: "/".into(),
        env: vec![(CLAIM_ENV.into(), json)],
        timeout: Some(std::time::Duration::from_secs(60)),
    };
    let out = Mutex::new(Vec::<(OutputStream, String)>::new());
    let exit = t.exec(&spec, &|s, l| out.lock().unwrap_or_else(|e| e.into_inner()).push((s, l.to_string()))).await?;
    let out = out.into_inner().unwrap_or_else(|e| e.into_inner());
    let stdout: Vec<&str> = out.iter().filter(|(s, _)| *s == OutputStream::Stdout).map(|(_, l)| l.as_str()).collect();
    if !exit.success() {
        let stderr: Vec<&str> = out.iter().filter(|(s, _)| *s == OutputStream::Stderr).map(|(_, l)| l.as_str()).collect();
        return Err(ProviderError::permanent(format!("cannot write the claim file {}: {exit}: {}", path.display(), stderr.join("\n  "))));
    }
    match stdout.split_first() {
        Some((&"claimed", _)) => Ok(Outcome::Ours),
        Some((&"taken", rest)) => {
            let h = holder(&rest.join("\n"));
            if h == claim.owner { Ok(Outcome::Ours) } else { Ok(Outcome::Taken(h)) }
        }
        _ => Err(ProviderError::permanent(format!("unexpected answer from the claim script: {stdout:?}"))),
    }
}

/// The owner named by the machine's claim file; `None` when it has none.
pub async fn holder_of(t: &dyn Transport, path: &Path) -> Result<Option<String>, ProviderError> {
    Ok(t.read_file(path).await?.map(|f| holder(&String::from_utf8_lossy(&f.content))))
}

/// Removes the claim file if it names `owner`. Returns whether it did.
pub async fn release(t: &dyn Transport, path: &Path, owner: &str) -> Result<bool, ProviderError> {
    match holder_of(t, path).await? {
        Some(h) if h == owner => Ok(t.remove_file(path).await?),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalTransport;

    fn ownership(env: &str) -> Ownership {
        Ownership {
            environment: env.into(),
            instance: None,
            resource: phoenix_core::ResourceAddr::parse("m").unwrap(),
            lineage: "l1".into(),
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn one_claim_wins_and_release_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root/.phoenix-claim.json");
        let t = LocalTransport::new();
        let (a, b) = (Claim::new(&ownership("a")), Claim::new(&ownership("b")));
        assert_eq!(claim(&t, &path, &a).await.unwrap(), Outcome::Ours);
        assert_eq!(claim(&t, &path, &a).await.unwrap(), Outcome::Ours, "claiming again is idempotent");
        assert_eq!(claim(&t, &path, &b).await.unwrap(), Outcome::Taken(a.owner.clone()));
        assert!(!release(&t, &path, &b.owner).await.unwrap(), "b cannot release a's claim");
        assert!(release(&t, &path, &a.owner).await.unwrap());
        assert_eq!(holder_of(&t, &path).await.unwrap(), None);
        assert_eq!(claim(&t, &path, &b).await.unwrap(), Outcome::Ours);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("root")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files are left");
    }
}

//! Optional encryption of state at rest: AES-256-GCM with a key from
//! `PHOENIX_STATE_KEY`, applied to `state.json` (and so its history) and to
//! every journal line.
//!
//! The encoding is a pure function over bytes, so any backend can use it:
//!
//! ```text
//! phoenix-sealed:v1:<24 hex: 96-bit random nonce>:<hex: ciphertext ‖ 128-bit tag>
//! ```
//!
//! One line of ASCII without a newline, so a sealed journal record is still
//! one CRC'd journal line. The key is SHA-256 of a fixed label and the
//! passphrase (at least 16 characters; use a long random one — the hash is
//! not a slow password KDF). Reading plain state with a key set is allowed
//! (the next write encrypts it: that is how state is migrated); reading sealed
//! state without the key, or with another key, is an error — never a reason to
//! start afresh and overwrite it.

use std::borrow::Cow;
use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use sha2::{Digest, Sha256};

/// The environment variable holding the passphrase.
pub const KEY_VAR: &str = "PHOENIX_STATE_KEY";

const MAGIC: &[u8] = b"phoenix-sealed:v1:";
/// Binds the ciphertext to its purpose: a state sealed for Phoenix opens nowhere else.
const AAD: &[u8] = b"phoenix-state";

/// A state encryption key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct StateKey(Key<Aes256Gcm>);

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// Why sealed bytes could not be opened, or a key not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// Sealed, and no key is set.
    #[error("it is encrypted and {KEY_VAR} is not set")]
    NoKey,
    /// The key does not open it (or the bytes were altered).
    #[error("it cannot be decrypted with {KEY_VAR}: a different key, or the file was altered")]
    WrongKey,
    /// Not a well-formed sealed text.
    #[error("its encrypted form is damaged: {0}")]
    Malformed(&'static str),
    /// The passphrase is too short to be a key.
    #[error("{KEY_VAR} is too short: use at least 16 characters (a long random string)")]
    WeakKey,
}

impl StateKey {
    /// Derives the key from a passphrase.
    pub fn from_passphrase(passphrase: &str) -> Result<Self, CryptError> {
        if passphrase.chars().count() < 16 {
            return Err(CryptError::WeakKey);
        }
        let mut h = Sha256::new();
        h.update(b"phoenix state key v1\0");
        h.update(passphrase.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        Ok(Self(digest.into()))
    }

    /// The key named by `PHOENIX_STATE_KEY`, if set (and not empty).
    pub fn from_env() -> Result<Option<Self>, CryptError> {
        match std::env::var(KEY_VAR) {
            Ok(p) if !p.is_empty() => Self::from_passphrase(&p).map(Some),
            _ => Ok(None),
        }
    }
}

/// Whether `bytes` are sealed (by their prefix).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Encrypts `plain` under `key` with a fresh random nonce.
pub fn seal(key: &StateKey, plain: &[u8]) -> Vec<u8> {
    let nonce = fresh_nonce();
    let mut buf = plain.to_vec();
    let tag = Aes256Gcm::new(&key.0)
        .encrypt_inout_detached(&nonce, AAD, buf.as_mut_slice().into())
        .expect("AES-GCM seals any state smaller than 64 GiB");
    let mut out = Vec::with_capacity(MAGIC.len() + 25 + 2 * (buf.len() + 16));
    out.extend_from_slice(MAGIC);
    push_hex(&mut out, &nonce);
    out.push(b':');
    push_hex(&mut out, &buf);
    push_hex(&mut out, &tag);
    out
}

/// Decrypts sealed bytes; plain bytes pass through unchanged.
pub fn open<'a>(key: Option<&StateKey>, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, CryptError> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else { return Ok(Cow::Borrowed(bytes)) };
    let key = key.ok_or(CryptError::NoKey)?;
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let colon = rest.iter().position(|b| *b == b':').ok_or(CryptError::Malformed("no nonce separator"))?;
    let nonce_bytes = hex(&rest[..colon]).ok_or(CryptError::Malformed("the nonce is not hex"))?;
    let mut body = hex(&rest[colon + 1..]).ok_or(CryptError::Malformed("the ciphertext is not hex"))?;
    if nonce_bytes.len() != 12 || body.len() < 16 {
        return Err(CryptError::Malformed("too short"));
    }
    let nonce = Nonce::<aes_gcm::aes::cipher::consts::U12>::try_from(nonce_bytes.as_slice()).map_err(|_| CryptError::Malformed("nonce"))?;
    let tag_at = body.len() - 16;
    let tag = Tag::<aes_gcm::aes::cipher::consts::U16>::try_from(&body[tag_at..]).map_err(|_| CryptError::Malformed("tag"))?;
    body.truncate(tag_at);
    Aes256Gcm::new(&key.0).decrypt_inout_detached(&nonce, AAD, body.as_mut_slice().into(), &tag).map_err(|_| CryptError::WrongKey)?;
    Ok(Cow::Owned(body))
}

/// 96 random bits. `uuid`'s v4 draws from the OS generator; two of them give
/// enough random bytes around their fixed version and variant bits.
fn fresh_nonce() -> Nonce<aes_gcm::aes::cipher::consts::U12> {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut n = [0u8; 12];
    n[..6].copy_from_slice(&a.as_bytes()[..6]);
    n[6..].copy_from_slice(&b.as_bytes()[10..]);
    n.into()
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

fn hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> StateKey {
        StateKey::from_passphrase(p).unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_plain_text() {
        let k = key("correct horse battery staple");
        let plain = br#"{"secret":"hunter2-hunter2"}"#;
        let sealed = seal(&k, plain);
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert!(!sealed.contains(&b'\n'), "one line: fits the journal");
        assert_eq!(open(Some(&k), &sealed).unwrap().as_ref(), plain);
        assert_ne!(seal(&k, plain), sealed, "a fresh nonce every time");
    }

    #[test]
    fn a_wrong_or_missing_key_or_altered_bytes_fail() {
        let sealed = seal(&key("correct horse battery staple"), b"state");
        assert_eq!(open(Some(&key("another long passphrase")), &sealed).unwrap_err(), CryptError::WrongKey);
        assert_eq!(open(None, &sealed).unwrap_err(), CryptError::NoKey);
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(open(Some(&key("correct horse battery staple")), &flipped).unwrap_err(), CryptError::WrongKey);
        assert!(matches!(open(Some(&key("correct horse battery staple")), &sealed[..40]), Err(CryptError::Malformed(_))));
    }

    #[test]
    fn plain_bytes_pass_through_and_short_keys_are_refused() {
        assert_eq!(open(None, b"{}").unwrap().as_ref(), b"{}");
        assert_eq!(StateKey::from_passphrase("short").unwrap_err(), CryptError::WeakKey);
        assert_eq!(format!("{:?}", key("correct horse battery staple")), "StateKey(..)");
    }
}

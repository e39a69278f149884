//! Secrets in table definitions are sealed before the catalog file is written.
//!
//! A password inside a connection string (`postgres://u:secret@h/db`, `password=...`)
//! and the value of any OPTIONS key that names a secret (`password`, `secret`, `token`,
//! `key`, `credential`, `auth`) are stored as `sealed:v1:<base64>`: AES-256-GCM with a
//! fresh nonce, under a key from `INSIGHTFLOW_SECRET_KEY` (base64 of 32 bytes) or, when
//! that is unset, `<data-dir>/secret.key`, created on first use with mode 0600. They
//! are opened only to re-create the table at start-up. A catalog copied without its
//! key keeps its tables' names and shapes, not their passwords.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

const PREFIX: &str = "sealed:v1:";
const KEY_FILE: &str = "secret.key";
pub const KEY_ENV: &str = "INSIGHTFLOW_SECRET_KEY";

/// Option keys (any part, lower case) whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "key",
    "credential",
    "auth",
];

pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// The key from the environment, else `<data_dir>/secret.key` (made if missing).
    pub fn open(data_dir: &Path) -> Result<Self> {
        let bad_key = |why: String| Error::BadDefinition {
            name: "the secret key".into(),
            reason: why,
        };
        let encoded = match std::env::var(KEY_ENV) {
            Ok(k) if !k.trim().is_empty() => k,
            _ => Self::key_file(data_dir)?,
        };
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| bad_key(format!("{KEY_ENV} or {KEY_FILE} is not base64: {e}")))?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| bad_key(format!("the key must be 32 bytes, got {}", bytes.len())))?;
        Ok(Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }

    fn key_file(data_dir: &Path) -> Result<String> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| io(std::io::Error::other("no randomness for a key")))?;
                let text = STANDARD.encode(bytes);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(text)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn seal(&self, plain: &str) -> Result<String> {
        let failed = || Error::BadDefinition {
            name: "a secret".into(),
            reason: "it could not be sealed (no system randomness?)".into(),
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| failed())?;
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| failed())?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// The plain text of a sealed value; other values come back as they are.
    pub fn unseal(&self, text: &str) -> Result<String> {
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Ok(text.to_string());
        };
        let wrong_key = || Error::BadDefinition {
            name: "a sealed secret".into(),
            reason: format!("it does not open with this key: was {KEY_ENV} or {KEY_FILE} changed?"),
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| wrong_key())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong_key());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong_key())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| wrong_key())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong_key())
    }
}

/// True if an OPTIONS key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// True if a value carries a password: a URL with one, or a `password=` pair.
pub fn has_embedded_password(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let url_password = value.split_once("://").is_some_and(|(_, rest)| {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    });
    url_password || lower.contains("password=") || lower.contains("pwd=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::open(dir.path()).unwrap();
        let sealed = sealer.seal("postgres://app:pw@db/x").unwrap();
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("pw@"));
        assert_ne!(
            sealed,
            sealer.seal("postgres://app:pw@db/x").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.unseal(&sealed).unwrap(), "postgres://app:pw@db/x");
        assert_eq!(sealer.unseal("plain").unwrap(), "plain");
        // The key file is private and reused.
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert_eq!(
            Sealer::open(dir.path()).unwrap().unseal(&sealed).unwrap(),
            "postgres://app:pw@db/x"
        );
        // Another data dir has another key.
        let other = tempfile::tempdir().unwrap();
        assert!(Sealer::open(other.path()).unwrap().unseal(&sealed).is_err());
    }

    #[test]
    fn what_counts_as_a_secret() {
        assert!(has_embedded_password("postgres://app:pw@db:5432/x"));
        assert!(has_embedded_password("host=db password=pw"));
        assert!(!has_embedded_password("postgres://app@db:5432/x"));
        assert!(!has_embedded_password("s3://bucket/path/file.parquet"));
        assert!(is_secret_key("aws.secret_access_key") && is_secret_key("password"));
        assert!(!is_secret_key("format.has_header") && !is_secret_key("table"));
    }
}

//! Users and their SCRAM-SHA-256 verifiers.
//!
//! Passwords are never stored: only a random salt and the salted password
//! (`Hi(password, salt, 4096)` of RFC 5802), which is what the SCRAM exchange needs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use serde::{Deserialize, Serialize};

use crate::access::{GrantDef, Privilege};
use crate::error::{Error, Result};
use crate::store::CatalogStore;

/// Iterations of the SCRAM key derivation; pgwire announces the same number.
pub const SCRAM_ITERATIONS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramVerifier {
    /// base64
    pub salt: String,
    /// base64 of the salted password
    pub salted_password: String,
    pub iterations: usize,
}

impl ScramVerifier {
    pub fn new(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        Self {
            salt: STANDARD.encode(salt),
            salted_password: STANDARD.encode(salted),
            iterations: SCRAM_ITERATIONS,
        }
    }

    /// `(salt, salted_password)` as bytes, for the SCRAM exchange.
    pub fn decode(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        Some((
            STANDARD.decode(&self.salt).ok()?,
            STANDARD.decode(&self.salted_password).ok()?,
        ))
    }

    /// Checks a cleartext password (Flight SQL basic auth).
    pub fn verify(&self, password: &str) -> bool {
        let Some((salt, expected)) = self.decode() else {
            return false;
        };
        let got = gen_salted_password(password, &salt, self.iterations);
        constant_time_eq(&got, &expected)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    pub superuser: bool,
    pub verifier: ScramVerifier,
    /// Roles made with `CREATE ROLE` (no `LOGIN`) cannot connect.
    #[serde(default = "yes")]
    pub login: bool,
    /// Roles whose grants this user or role inherits.
    #[serde(default)]
    pub member_of: Vec<String>,
    /// Caps set with `ALTER ROLE ... SET`; members inherit them.
    #[serde(default)]
    pub limits: RoleLimits,
}

/// What a role may do at most, like the tiers of a hosted service. `None`: no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleLimits {
    /// Rows one statement may return.
    pub max_result_rows: Option<u64>,
    /// Bytes one load (COPY FROM STDIN, Flight bulk ingest) may carry.
    pub max_file_bytes: Option<u64>,
}

impl RoleLimits {
    pub const NAMES: [&'static str; 2] = ["max_result_rows", "max_file_bytes"];

    fn slot(&mut self, name: &str) -> Option<&mut Option<u64>> {
        match name {
            "max_result_rows" => Some(&mut self.max_result_rows),
            "max_file_bytes" => Some(&mut self.max_file_bytes),
            _ => None,
        }
    }

    /// The error for going past `limit` (SQLSTATE 54000).
    pub fn exceeded(limit: &str, value: u64, user: &str, what: &str) -> Error {
        Error::LimitExceeded {
            message: format!(
                "{what} goes past {limit} = {value}, the cap for user \"{user}\"; \
                 narrow it (a LIMIT, a smaller file), or a superuser can raise it with \
                 ALTER ROLE {user} SET {limit} = ..."
            ),
        }
    }

    /// The tighter of two sets of caps.
    pub fn tightest(self, other: RoleLimits) -> RoleLimits {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RoleLimits {
            max_result_rows: min(self.max_result_rows, other.max_result_rows),
            max_file_bytes: min(self.max_file_bytes, other.max_file_bytes),
        }
    }
}

fn yes() -> bool {
    true
}

impl CatalogStore {
    pub fn user(&self, name: &str) -> Option<UserDef> {
        self.read(|c| c.users.iter().find(|u| u.name == name).cloned())
    }

    pub fn users(&self) -> Vec<UserDef> {
        self.read(|c| c.users.clone())
    }

    pub fn create_user(&self, name: &str, password: &str, superuser: bool) -> Result<()> {
        let verifier = ScramVerifier::new(password);
        self.update(|c| {
            if c.users.iter().any(|u| u.name == name) {
                return Err(Error::UserExists { name: name.into() });
            }
            c.users.push(UserDef {
                name: name.into(),
                superuser,
                verifier,
                login: true,
                member_of: Vec::new(),
                limits: RoleLimits::default(),
            });
            Ok(())
        })
    }

    /// `CREATE ROLE`: a role without a password gets a random one nobody knows.
    pub fn create_role_with(
        &self,
        name: &str,
        password: Option<&str>,
        superuser: bool,
        login: bool,
    ) -> Result<()> {
        let random: String = (0..4)
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        self.create_user(name, password.unwrap_or(&random), superuser)?;
        self.set_login(name, login)
    }

    /// A role that cannot log in.
    pub fn create_role(&self, name: &str) -> Result<()> {
        self.create_role_with(name, None, false, false)
    }

    fn change_user(&self, name: &str, change: impl FnOnce(&mut UserDef)) -> Result<()> {
        self.update(|c| {
            let user = c
                .users
                .iter_mut()
                .find(|u| u.name == name)
                .ok_or_else(|| Error::UserNotFound { name: name.into() })?;
            change(user);
            Ok(())
        })
    }

    pub fn set_login(&self, name: &str, login: bool) -> Result<()> {
        self.change_user(name, |u| u.login = login)
    }

    /// `ALTER ROLE name SET limit = value` (`None`: `RESET`).
    pub fn set_limit(&self, name: &str, limit: &str, value: Option<u64>) -> Result<()> {
        let mut probe = RoleLimits::default();
        if probe.slot(limit).is_none() {
            return Err(Error::NotSupported {
                what: format!(
                    "the role setting {limit}: InsightFlow knows {}",
                    RoleLimits::NAMES.join(" and ")
                ),
            });
        }
        self.change_user(name, |u| {
            if let Some(slot) = u.limits.slot(limit) {
                *slot = value;
            }
        })
    }

    pub fn set_superuser(&self, name: &str, superuser: bool) -> Result<()> {
        self.change_user(name, |u| u.superuser = superuser)
    }

    /// Makes `member` inherit the grants of `role`.
    pub fn add_member(&self, member: &str, role: &str) -> Result<()> {
        if self.user(role).is_none() {
            return Err(Error::UserNotFound { name: role.into() });
        }
        self.change_user(member, |u| {
            if !u.member_of.iter().any(|r| r == role) {
                u.member_of.push(role.to_string());
            }
        })
    }

    pub fn remove_member(&self, member: &str, role: &str) -> Result<()> {
        self.change_user(member, |u| u.member_of.retain(|r| r != role))
    }

    /// Drops a user or role with its grants and memberships.
    pub fn drop_user(&self, name: &str) -> Result<()> {
        self.update(|c| {
            let before = c.users.len();
            c.users.retain(|u| u.name != name);
            if c.users.len() == before {
                return Err(Error::UserNotFound { name: name.into() });
            }
            for u in &mut c.users {
                u.member_of.retain(|r| r != name);
            }
            c.grants.retain(|g| g.grantee != name);
            Ok(())
        })
    }

    pub fn grant(&self, grant: GrantDef) -> Result<()> {
        if self.user(&grant.grantee).is_none() {
            return Err(Error::UserNotFound {
                name: grant.grantee,
            });
        }
        self.update(|c| {
            if !c.grants.contains(&grant) {
                c.grants.push(grant);
            }
            Ok(())
        })
    }

    /// Removes a grant; revoking `ALL` removes the narrower grants on the same target.
    pub fn revoke(&self, grant: &GrantDef) -> Result<()> {
        self.update(|c| {
            c.grants.retain(|g| {
                !(g.grantee == grant.grantee
                    && g.target == grant.target
                    && (g.privilege == grant.privilege || grant.privilege == Privilege::All))
            });
            Ok(())
        })
    }

    pub fn grants(&self) -> Vec<GrantDef> {
        self.read(|c| c.grants.clone())
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let verifier = ScramVerifier::new(password);
        self.update(|c| {
            let user = c
                .users
                .iter_mut()
                .find(|u| u.name == name)
                .ok_or_else(|| Error::UserNotFound { name: name.into() })?;
            user.verifier = verifier;
            Ok(())
        })
    }

    /// Checks a user's cleartext password; `None` if the user is unknown.
    pub fn check_password(&self, name: &str, password: &str) -> Option<UserDef> {
        self.user(name)
            .filter(|u| u.login && u.verifier.verify(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_persist_and_passwords_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store = CatalogStore::open(dir.path()).unwrap();
        store.create_user("ann", "s3cret", false).unwrap();
        assert!(matches!(
            store.create_user("ann", "x", false),
            Err(Error::UserExists { .. })
        ));
        let store = CatalogStore::open(dir.path()).unwrap();
        assert!(store.check_password("ann", "s3cret").is_some());
        assert!(store.check_password("ann", "wrong").is_none());
        assert!(store.check_password("bob", "s3cret").is_none());
        store.set_password("ann", "new").unwrap();
        assert!(store.check_password("ann", "new").is_some());
        let raw = std::fs::read_to_string(dir.path().join("catalog.json")).unwrap();
        assert!(!raw.contains("new\"") && !raw.contains("s3cret"));
    }
}

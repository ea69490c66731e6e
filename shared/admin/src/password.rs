//! Password hashing (Argon2id, PHC strings), the password policy and
//! temporary passwords.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;

use crate::error::AdminError;

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Argon2 hashes whatever it is given; a cap keeps a huge "password" from
/// costing more than a normal one.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Letters and digits nobody misreads in a mail (no 0/O, 1/l/I).
const TEMP_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// 20 characters of a 56-letter alphabet: over 115 bits.
const TEMP_CHARS: usize = 20;

/// How expensive a hash is. The stored PHC string records its own
/// parameters, so changing these affects new hashes only.
#[derive(Debug, Clone)]
pub struct HashCost(Params);

impl Default for HashCost {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 passes, 1 lane).
    fn default() -> Self {
        Self(Params::default())
    }
}

impl HashCost {
    /// Cheap hashes for tests, where thousands of default hashes would be
    /// slow on a small machine. Never for stored production passwords.
    pub fn insecure_fast() -> Self {
        Self(Params::new(256, 1, 1, None).expect("valid argon2 parameters"))
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.0.clone())
    }
}

/// Checks the minimal policy; the message is shown to the person.
pub fn check_policy(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AdminError::Invalid(format!(
            "the new password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AdminError::Invalid(format!(
            "the new password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Hashes on a blocking thread: a hash is deliberately tens of milliseconds
/// of CPU, which must not stall the async workers serving other requests.
pub async fn hash(cost: &HashCost, password: &str) -> Result<String, AdminError> {
    let hasher = cost.hasher();
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt: [u8; 16] = rand::rngs::OsRng.gen();
        let salt = SaltString::encode_b64(&salt).map_err(|_| AdminError::Internal("salt"))?;
        hasher
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| AdminError::Internal("password hashing failed"))
    })
    .await
    .map_err(|_| AdminError::Internal("password hashing task failed"))?
}

/// Which of `hashes` `password` matches (`None`s are skipped). Every
/// candidate is checked, and with no candidate a throwaway hash is computed,
/// so the time taken does not tell whether the account exists.
pub async fn matching(cost: &HashCost, password: &str, hashes: [Option<&str>; 2]) -> Option<usize> {
    let hashes = hashes.map(|h| h.map(str::to_owned));
    let password = password.to_owned();
    let hasher = cost.hasher();
    tokio::task::spawn_blocking(move || {
        if password.len() > MAX_PASSWORD_BYTES {
            return None;
        }
        if hashes.iter().all(Option::is_none) {
            if let Ok(salt) = SaltString::encode_b64(&[0u8; 16]) {
                let _ = hasher.hash_password(password.as_bytes(), &salt);
            }
            return None;
        }
        let mut matched = None;
        for (index, stored) in hashes.iter().enumerate() {
            // The PHC string carries algorithm and parameters; the default
            // verifier honours them, whatever `HashCost` is now.
            let Some(parsed) = stored.as_deref().and_then(|h| PasswordHash::new(h).ok()) else {
                continue;
            };
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            if ok && matched.is_none() {
                matched = Some(index);
            }
        }
        matched
    })
    .await
    .unwrap_or(None)
}

/// A fresh temporary password for a mail.
pub fn temporary() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..TEMP_CHARS)
        .map(|_| char::from(TEMP_ALPHABET[rng.gen_range(0..TEMP_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let cost = HashCost::insecure_fast();
        let h = hash(&cost, "correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert_eq!(
            matching(&cost, "correct horse battery", [None, Some(&h)]).await,
            Some(1)
        );
        assert_eq!(
            matching(&cost, "wrong horse battery", [Some(&h), None]).await,
            None
        );
        assert_eq!(matching(&cost, "anything at all", [None, None]).await, None);
    }

    #[test]
    fn temporary_passwords_pass_the_policy_and_differ() {
        let a = temporary();
        assert_eq!(a.chars().count(), TEMP_CHARS);
        check_policy(&a).unwrap();
        assert_ne!(a, temporary());
        assert!(check_policy("short").is_err());
    }
}

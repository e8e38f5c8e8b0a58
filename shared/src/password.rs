//! argon2id password hashing at OWASP strength, run off the async executor.

use crate::credentials::Password;
use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// OWASP's minimum for argon2id: 19 MiB of memory, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

/// A hash of a random, forgotten password at the current parameters: an
/// unknown username is checked against it so that it costs one hash, like a
/// wrong password does.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$7nDMNp1cpSmK0Dp9n/8Rqw$SlaETmQ1hzcc+0Yp0mp0w4JP++FrqkR1eBJEuz2NT+A";

fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, None).expect("constant argon2 parameters are valid")
}

/// argon2's working memory, allocated once and reused: a fresh 19 MiB per
/// hash would leave the allocator holding many of them (peak RSS over 200 MB
/// measured), where one buffer keeps a function near 30 MB.
static MEMORY: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// Runs argon2 over `password` and `salt` into `out`, in the shared memory.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    let blocks = params.block_count();
    let mut memory = memory(blocks);
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .is_ok()
}

/// The shared memory, grown (and its new pages touched) to at least `blocks`.
fn memory(blocks: usize) -> MutexGuard<'static, Vec<Block>> {
    let mut memory = MEMORY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if memory.len() < blocks {
        let missing = blocks - memory.len();
        memory.reserve_exact(missing);
        prefer_huge_pages(&mut memory);
        memory.resize(blocks, Block::default());
        // An old hash's smaller parameters do not make the memory ready.
        if blocks >= params().block_count() {
            PREPARED.store(true, Ordering::Release);
        }
    }
    memory
}

/// Set once the memory has grown to the current parameters' size.
static PREPARED: AtomicBool = AtomicBool::new(false);

/// Gets argon2's memory ready for a hash at the current parameters, off the
/// executor, so that a caller can overlap the first touch of its 19 MiB
/// (3 to 9 ms in a cold instance) with a network round trip it makes anyway:
/// `login` runs it beside its user read. Free once the memory is ready.
pub async fn prepare() {
    if !PREPARED.load(Ordering::Acquire) {
        // A failure here costs nothing: the hash grows the memory itself.
        let _ = tokio::task::spawn_blocking(|| drop(memory(params().block_count()))).await;
    }
}

/// Asks the kernel to back the untouched part of `memory` with 2 MiB pages
/// where it can (transparent huge pages, `madvise` mode). The first hash of a
/// cold instance writes all 19 MiB: in 4 KiB pages that is ~4,900 page faults,
/// most of the first-invoke cost of `register` and `login` (cold starts in
/// `make bench`). Only advice: where the kernel declines, nothing changes.
#[cfg(target_os = "linux")]
fn prefer_huge_pages(memory: &mut Vec<Block>) {
    const PAGE: usize = 4096;
    let spare = memory.spare_capacity_mut();
    let from = spare.as_mut_ptr() as usize;
    let (start, end) = (from.next_multiple_of(PAGE), (from + size_of_val(spare)) / PAGE * PAGE);
    if end > start {
        // SAFETY: whole pages inside this Vec's own allocation, which nothing
        // else references; MADV_HUGEPAGE changes how they are backed, never
        // their contents or validity.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn prefer_huge_pages(_: &mut Vec<Block>) {}

/// Hashing failed for a reason outside the client's control (e.g. the blocking pool is gone).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password to an argon2id PHC string with a fresh random salt.
pub async fn hash(password: &Password) -> Result<String, HashError> {
    let password = password.expose().to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = argon2::password_hash::generate_salt();
        let mut out = [0u8; 32];
        if !compute(
            Algorithm::Argon2id,
            Version::V0x13,
            params(),
            password.as_bytes(),
            &salt,
            &mut out,
        ) {
            return Err(HashError("argon2 refused its own parameters".into()));
        }
        Ok(format!(
            "$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}${}${}",
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        ))
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password matches and the hash is at the current parameters.
    Valid,
    /// The password matches but the hash is weaker than today's: store a new one.
    ValidNeedsRehash,
    Invalid,
}

/// Checks `password` against `stored`, or against the dummy hash when there
/// is no user, so both paths cost the same. A malformed stored hash is `Invalid`.
///
/// The normalised form is tried first. A hash stored before passwords were
/// normalised (NFKC) is of the form as typed: when the normalised form fails
/// and the password arrived in another form, that form is tried too, and a
/// match asks for a rehash, which stores the normalised form's hash. An
/// unknown user pays the second try as well, so timing still tells nothing.
pub async fn verify(password: &Password, stored: Option<&str>) -> Result<Verdict, HashError> {
    let normalized = password.expose().to_owned();
    let unnormalized = password.expose_unnormalized().map(str::to_owned);
    let known = stored.is_some();
    let stored = stored.unwrap_or(DUMMY_HASH).to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return Verdict::Invalid;
        };
        let verdict = |matched: bool| match matched {
            true if !known => Verdict::Invalid,
            true if needs_rehash(&parsed) => Verdict::ValidNeedsRehash,
            true => Verdict::Valid,
            false => Verdict::Invalid,
        };
        match verdict(matches(&parsed, normalized.as_bytes())) {
            Verdict::Invalid => match unnormalized {
                Some(raw) if matches(&parsed, raw.as_bytes()) && known => Verdict::ValidNeedsRehash,
                _ => Verdict::Invalid,
            },
            valid => valid,
        }
    })
    .await
    .map_err(|e| HashError(e.to_string()))
}

/// True when `password` hashes to `hash` at the hash's own algorithm and parameters (constant-time compare).
fn matches(hash: &PasswordHash, password: &[u8]) -> bool {
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        hash.algorithm.as_str().parse::<Algorithm>(),
        Params::try_from(hash),
        hash.salt.as_ref(),
        hash.hash.as_ref(),
    ) else {
        return false;
    };
    let version = hash.version.map(Version::try_from).unwrap_or(Ok(Version::V0x13));
    let Ok(version) = version else { return false };
    let mut out = vec![0u8; expected.len()];
    compute(algorithm, version, params, password, salt, &mut out)
        && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

/// True when a hash is not argon2id v19 at least as strong as the current parameters.
fn needs_rehash(hash: &PasswordHash) -> bool {
    let Ok(params) = Params::try_from(hash) else {
        return true;
    };
    hash.algorithm.as_str() != "argon2id"
        || hash.version != Some(Version::V0x13 as u32)
        || params.m_cost() < M_COST_KIB
        || params.t_cost() < T_COST
        || params.p_cost() < P_COST
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    fn pw(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_hash_is_an_argon2id_phc_string_at_owasp_parameters() {
        let h = hash(&pw("correct horse battery")).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    #[tokio::test]
    async fn the_right_password_verifies_and_a_wrong_one_does_not() {
        let h = hash(&pw("correct horse battery")).await.unwrap();
        assert_eq!(
            verify(&pw("correct horse battery"), Some(&h)).await.unwrap(),
            Verdict::Valid
        );
        assert_eq!(
            verify(&pw("correct horse batterY"), Some(&h)).await.unwrap(),
            Verdict::Invalid
        );
    }

    #[tokio::test]
    async fn a_hash_verifies_with_the_argon2_crate_itself() {
        use argon2::PasswordVerifier;
        let h = hash(&pw("interoperable password")).await.unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"interoperable password", &parsed)
                .is_ok()
        );
        assert!(Argon2::default().verify_password(b"another password", &parsed).is_err());
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let p = pw("same password");
        assert_ne!(hash(&p).await.unwrap(), hash(&p).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_costs_as_much_as_a_real_one() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert!(!needs_rehash(&parsed));
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (M_COST_KIB, T_COST, P_COST)
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
        assert_eq!(verify(&pw("anything at all"), None).await.unwrap(), Verdict::Invalid);
    }

    #[tokio::test]
    async fn a_hash_with_weaker_parameters_verifies_but_asks_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password(b"old password")
        .unwrap()
        .to_string();
        assert_eq!(
            verify(&pw("old password"), Some(&weak)).await.unwrap(),
            Verdict::ValidNeedsRehash
        );
    }

    #[tokio::test]
    async fn an_argon2i_hash_asks_for_a_rehash() {
        let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap();
        let h = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"old password")
            .unwrap()
            .to_string();
        assert_eq!(
            verify(&pw("old password"), Some(&h)).await.unwrap(),
            Verdict::ValidNeedsRehash
        );
    }

    /// A PHC string of argon2 at exactly these settings.
    fn phc(algorithm: Algorithm, m: u32, t: u32, p: u32) -> String {
        Argon2::new(algorithm, Version::V0x13, Params::new(m, t, p, None).unwrap())
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string()
    }

    #[test]
    fn each_parameter_below_todays_asks_for_a_rehash_and_none_at_or_above_does() {
        let rehash = |phc: &str| needs_rehash(&PasswordHash::new(phc).unwrap());
        assert!(
            !rehash(&phc(Algorithm::Argon2id, M_COST_KIB, T_COST, P_COST)),
            "today's"
        );
        assert!(
            !rehash(&phc(Algorithm::Argon2id, M_COST_KIB + 8, T_COST + 1, P_COST + 1)),
            "stronger"
        );
        assert!(
            rehash(&phc(Algorithm::Argon2id, M_COST_KIB - 8, T_COST, P_COST)),
            "less memory"
        );
        assert!(
            rehash(&phc(Algorithm::Argon2id, M_COST_KIB, T_COST - 1, P_COST)),
            "fewer passes"
        );
        assert!(rehash(&phc(Algorithm::Argon2d, M_COST_KIB, T_COST, P_COST)), "argon2d");
    }

    /// "Crème brûlée" as a Mac keyboard may send it: accents as combining marks (NFD).
    const NFD: &str = "cre\u{300}me bru\u{302}le\u{301}e 2 spoons";
    /// The same as one code point each (NFC), as most keyboards send it.
    const NFC: &str = "cr\u{e8}me br\u{fb}l\u{e9}e 2 spoons";

    #[tokio::test]
    async fn a_password_registered_in_nfc_logs_in_when_typed_in_nfd() {
        let h = hash(&pw(NFC)).await.unwrap();
        assert_eq!(verify(&pw(NFD), Some(&h)).await.unwrap(), Verdict::Valid);
        let h = hash(&pw(NFD)).await.unwrap();
        assert_eq!(verify(&pw(NFC), Some(&h)).await.unwrap(), Verdict::Valid);
    }

    /// A hash of `raw` exactly as given, as `hash` made one before passwords were normalised.
    fn hash_of_raw_form(raw: &str) -> String {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(raw.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_hash_of_the_raw_nfd_form_made_before_normalisation_verifies_and_asks_for_a_rehash() {
        let old = hash_of_raw_form(NFD);
        assert!(!needs_rehash(&PasswordHash::new(&old).unwrap()), "today's parameters");
        assert_eq!(
            verify(&pw(NFD), Some(&old)).await.unwrap(),
            Verdict::ValidNeedsRehash,
            "typed as it was registered"
        );
        // The upgrade: the new hash is of the normalised form, which either form then matches.
        let new = hash(&pw(NFD)).await.unwrap();
        assert_eq!(verify(&pw(NFD), Some(&new)).await.unwrap(), Verdict::Valid);
        assert_eq!(verify(&pw(NFC), Some(&new)).await.unwrap(), Verdict::Valid);
    }

    #[tokio::test]
    async fn the_raw_form_is_no_way_around_a_wrong_password_or_an_unknown_user() {
        let old = hash_of_raw_form(NFD);
        let wrong = "cre\u{300}me bru\u{302}le\u{301}e 3 spoons";
        assert_eq!(verify(&pw(wrong), Some(&old)).await.unwrap(), Verdict::Invalid);
        assert_eq!(verify(&pw(NFD), None).await.unwrap(), Verdict::Invalid);
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_a_failed_login_not_a_crash() {
        assert_eq!(
            verify(&pw("whatever123"), Some("not-a-phc-string")).await.unwrap(),
            Verdict::Invalid
        );
    }
}

//! The compiled-component cache: a folder of components wasmtime has already compiled, so a
//! restart (or a reload of an unchanged plugin) does not compile them again.
//!
//! An entry is `HASH-ENGINE.cwasm`: `HASH` is the [`content_hash`](super::content_hash) of
//! the component's bytes, `ENGINE` a fingerprint of the engine settings compiled code
//! depends on (target, compiler flags, tunables, features, wasmtime version), so engines that
//! differ never share an entry. Entries are written aside and renamed into place, so several
//! nodes can share one folder; every load refreshes its entry's time, and [`prune`] drops
//! what nobody has loaded for [`CACHE_KEEP`].
//!
//! # Only the node's own entries are loaded
//!
//! Loading an entry (`Component::deserialize`) maps its bytes in as native code, unchecked:
//! whoever can put a file under an entry's name runs code as the node. So beside each entry
//! the node writes `HASH-ENGINE.cwasm.tag`, an HMAC-SHA256 of the entry's name and bytes
//! under a secret key kept in the folder (`cache.key`, 32 random bytes, created with mode
//! 0600 by the first node that uses the folder). An entry is loaded only if its tag
//! verifies; a missing or wrong tag (garbage, another component's code under this name, an
//! entry from before tags) is a miss: the component is compiled again, the entry and its tag
//! overwritten, and a warning logged. The bytes checked are the bytes loaded (read once into
//! memory, then deserialized from there), so the file cannot change in between.
//!
//! Why a key in the folder, not one derived from something else: a plain hash would not do
//! (whoever writes an entry can write its hash too), and the key has to be secret from the
//! guests, the only untrusted code the node runs. They cannot read or write the cache folder
//! at all: `config/grants.rs` refuses any directory grant, even read-only, that is, contains
//! or lies inside it. Other users of the machine are kept out of the key by its mode.
//! Anyone who can read the key as the node's user can already replace the node's binary or
//! configuration, so nothing is lost to them. A key derived instead from the configuration
//! or the database would change with every edit (recompiling everything) and differ between
//! nodes that share a folder; one derived from the machine (its id, host name) is no secret.
//! A key kept in the folder is shared by exactly the nodes that share the entries.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Compiled components no node has loaded for this long are deleted from the cache (an
/// interpreter's compiled code is tens of MiB, and every build of a guest is a new entry).
pub const CACHE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a half-written entry (`.partial-PID`) may sit before it counts as left by a
/// compile that crashed.
const PARTIAL_KEEP: Duration = Duration::from_secs(3600);

/// The file of a cache folder that holds its key, as 64 hex digits.
const KEY_FILE: &str = "cache.key";

/// What an entry's tag file adds to the entry's name.
const TAG_SUFFIX: &str = ".tag";

/// The secret key of one cache folder, which authenticates its entries.
struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `dir` (which must exist), created if the folder has none yet.
    fn of(dir: &Path) -> anyhow::Result<CacheKey> {
        let file = dir.join(KEY_FILE);
        if !file.exists() {
            Self::create(dir, &file)
                .with_context(|| format!("cannot create the cache key {}", file.display()))?;
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read the cache key {}", file.display()))?;
        let key = decode_hex(text.trim())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .with_context(|| {
                format!(
                    "the cache key {} is not 64 hex digits: delete it (the cache's entries are \
                     then compiled again)",
                    file.display()
                )
            })?;
        if let Ok(metadata) = std::fs::metadata(&file) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %file.display(),
                    mode = %format!("{mode:o}"),
                    "the component cache's key can be read by other users; `chmod 600` it"
                );
            }
        }
        Ok(CacheKey(key))
    }

    /// Writes a new random key aside (mode 0600) and links it into place, unless another
    /// node got there first: either way every node then reads the one key.
    fn create(dir: &Path, file: &Path) -> anyhow::Result<()> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no random bytes: {e}"))?;
        let partial = dir.join(format!("{KEY_FILE}.partial-{}", std::process::id()));
        let _ = std::fs::remove_file(&partial);
        let written = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut f| {
                f.write_all(format!("{}\n", encode_hex(&key)).as_bytes())?;
                f.sync_all()
            });
        // A hard link, unlike a rename, never replaces a key another node created meanwhile.
        let linked = written.and_then(|()| match std::fs::hard_link(&partial, file) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        });
        let _ = std::fs::remove_file(&partial);
        Ok(linked?)
    }

    /// The tag of the entry named `name` holding `bytes`.
    fn mac(&self, name: &str, bytes: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        // The name is part of what is authenticated: one entry's file and tag, copied under
        // another name, do not verify there.
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac
    }

    fn tag(&self, name: &str, bytes: &[u8]) -> String {
        encode_hex(&self.mac(name, bytes).finalize().into_bytes())
    }

    /// True if `tag` (as written in a tag file) is the tag of `bytes` named `name`; compared
    /// in constant time.
    fn verifies(&self, name: &str, bytes: &[u8], tag: &str) -> bool {
        decode_hex(tag.trim()).is_some_and(|tag| self.mac(name, bytes).verify_slice(&tag).is_ok())
    }
}

/// Compiles a component, or loads it from `cache_dir` where an engine with the same settings
/// compiled it before (and tagged it with the folder's key).
pub(super) fn compile(
    engine: &Engine,
    cache_dir: Option<&Path>,
    hash: &str,
    bytes: &[u8],
) -> anyhow::Result<Component> {
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, bytes)?);
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the component cache {}", dir.display()))?;
    let key = CacheKey::of(dir)?;
    let name = format!("{hash}-{}.cwasm", engine_fingerprint(engine));
    let cached = dir.join(&name);
    if let Some(component) = load_tagged(engine, &key, &cached, &name) {
        return Ok(component);
    }
    let compiled = engine.precompile_component(bytes)?;
    // Write aside and rename, so a concurrent reader never sees half a file.
    let tag = key.tag(&name, &compiled);
    for (path, contents) in [
        (cached.clone(), compiled.as_slice()),
        (tag_of(&cached), tag.as_bytes()),
    ] {
        let partial = PathBuf::from(format!("{}.partial-{}", path.display(), std::process::id()));
        std::fs::write(&partial, contents)
            .and_then(|()| std::fs::rename(&partial, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // SAFETY: just produced by this engine's `precompile_component`.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    Ok(component)
}

/// The entry at `cached` (named `name`), if it exists, its tag verifies, and it loads.
/// Anything else is a miss, logged unless the entry is simply not there.
fn load_tagged(engine: &Engine, key: &CacheKey, cached: &Path, name: &str) -> Option<Component> {
    let bytes = match std::fs::read(cached) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %cached.display(), error = %e, "cannot read a cache entry; compiling again");
            return None;
        }
    };
    let tag = std::fs::read_to_string(tag_of(cached)).unwrap_or_default();
    if !key.verifies(name, &bytes, &tag) {
        tracing::warn!(
            file = %cached.display(),
            "cache entry not loaded: its tag is missing or does not match (this node's cache \
             did not write it); compiling again"
        );
        return None;
    }
    // SAFETY: `bytes` carry a tag only a holder of this cache's key can make, and only
    // nodes hold it (see the module docs): they are what `precompile_component` of an
    // engine with the same settings (both in the name) wrote. A file that still fails to
    // load is recompiled.
    #[allow(unsafe_code)]
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(component) => {
            // Mark it used, so pruning keeps it (see `prune`).
            let _ = std::fs::File::options()
                .append(true)
                .open(cached)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            Some(component)
        }
        Err(e) => {
            tracing::warn!(file = %cached.display(), error = %e, "ignoring unusable cache entry");
            None
        }
    }
}

/// The tag file of the entry at `entry`.
fn tag_of(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(TAG_SUFFIX);
    PathBuf::from(name)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Deletes the entries of `dir` (with their tags) that none of `in_use` (content hashes)
/// needs and that nobody has loaded for [`CACHE_KEEP`], half-written files left by a compile
/// that crashed, and tags whose entry is gone. Returns how many files went.
pub(super) fn prune(dir: &Path, in_use: &[&str]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep_for = if let Some(tagged) = name.strip_suffix(TAG_SUFFIX) {
            // A tag goes with its entry (below); one whose entry is gone is left over.
            if dir.join(tagged).exists() {
                continue;
            }
            PARTIAL_KEEP
        } else if name.ends_with(".cwasm") {
            if in_use
                .iter()
                .any(|hash| name.starts_with(&format!("{hash}-")))
            {
                continue;
            }
            CACHE_KEEP
        } else if name.contains(".partial-") {
            PARTIAL_KEEP
        } else {
            continue;
        };
        let unused_for = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if unused_for.is_some_and(|age| age > keep_for)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            tracing::info!(file = %entry.path().display(), "removed an unused compiled component from the cache");
            removed += 1;
            if name.ends_with(".cwasm") && std::fs::remove_file(tag_of(&entry.path())).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The `ENGINE` part of an entry's name: 64 bits of the SHA-256 of wasmtime's
/// [`Engine::precompile_compatibility_hash`], in hex.
///
/// SHA-256 rather than `std`'s `DefaultHasher`, whose algorithm may change between Rust
/// releases: a node built with a newer toolchain would then miss every entry. What is hashed
/// is what wasmtime's `Hash` impl writes, the engine's settings as bytes. Entries named by the
/// earlier `DefaultHasher` fingerprint are simply not found once: their components are
/// compiled again, and the old files pruned after [`CACHE_KEEP`].
fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher::default();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    // 64 bits keep the names as they were and are plenty to tell apart the few engine
    // configurations that share a cache.
    format!("{:016x}", hasher.finish())
}

/// A [`Hasher`] whose result is the first 64 bits of the SHA-256 of everything written.
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(fuel: bool) -> Engine {
        Engine::new(&super::super::engine_config(false, fuel)).expect("an engine")
    }

    #[test]
    fn a_cache_folder_gets_one_private_key_that_every_node_reads() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::of(dir.path()).unwrap();
        let file = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            CacheKey::of(dir.path()).unwrap().0,
            key.0,
            "read, not replaced"
        );
        let other = tempfile::tempdir().unwrap();
        assert_ne!(CacheKey::of(other.path()).unwrap().0, key.0);
        // Nothing is left aside.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [KEY_FILE]);

        std::fs::write(&file, "not hex\n").unwrap();
        let refused = CacheKey::of(dir.path()).err().unwrap();
        assert!(
            format!("{refused:#}").contains("not 64 hex digits: delete it"),
            "{refused:#}"
        );
    }

    #[test]
    fn a_tag_holds_for_its_key_name_and_bytes_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::of(dir.path()).unwrap();
        let tag = key.tag("a-1.cwasm", b"compiled");
        assert_eq!(tag.len(), 64);
        assert!(key.verifies("a-1.cwasm", b"compiled", &format!("{tag}\n")));
        assert!(!key.verifies("a-1.cwasm", b"compiled!", &tag));
        assert!(
            !key.verifies("b-1.cwasm", b"compiled", &tag),
            "moved under another name"
        );
        assert!(!key.verifies("a-1.cwasm", b"compiled", ""));
        assert!(!key.verifies("a-1.cwasm", b"compiled", &tag[..62]));
        let other = tempfile::tempdir().unwrap();
        let stranger = CacheKey::of(other.path()).unwrap();
        assert!(!stranger.verifies("a-1.cwasm", b"compiled", &tag));
    }

    #[test]
    fn engines_share_entries_exactly_when_their_settings_match() {
        let plain = engine_fingerprint(&engine(false));
        assert_eq!(plain.len(), 16);
        assert!(plain.chars().all(|c| c.is_ascii_hexdigit()), "{plain}");
        assert_eq!(engine_fingerprint(&engine(false)), plain);
        assert_ne!(engine_fingerprint(&engine(true)), plain);
    }
}

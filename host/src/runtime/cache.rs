//! The compiled-component cache: a folder of components wasmtime has already compiled, so a
//! restart (or a reload of an unchanged plugin) does not compile them again.
//!
//! An entry is `HASH-ENGINE.cwasm`: `HASH` is the [`content_hash`](super::content_hash) of
//! the component's bytes, `ENGINE` a fingerprint of the engine settings compiled code
//! depends on (target, compiler flags, tunables, features, wasmtime version), so engines that
//! differ never share an entry. Entries are written aside and renamed into place, so several
//! nodes can share one folder; every load refreshes its entry's time, and [`prune`] drops
//! what nobody has loaded for [`CACHE_KEEP`].

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Compiled components no node has loaded for this long are deleted from the cache (an
/// interpreter's compiled code is tens of MiB, and every build of a guest is a new entry).
pub const CACHE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a half-written entry (`.partial-PID`) may sit before it counts as left by a
/// compile that crashed.
const PARTIAL_KEEP: Duration = Duration::from_secs(3600);

/// Compiles a component, or loads it from `cache_dir` where an engine with the same settings
/// compiled it before.
pub(super) fn compile(
    engine: &Engine,
    cache_dir: Option<&Path>,
    hash: &str,
    bytes: &[u8],
) -> anyhow::Result<Component> {
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, bytes)?);
    };
    let cached = dir.join(format!("{hash}-{}.cwasm", engine_fingerprint(engine)));
    if cached.is_file() {
        // SAFETY: the file was written by `precompile_component` of an engine with the
        // same settings (both are in its name) into Parade's own cache directory; a
        // file that fails to load is recompiled below.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(component) => {
                // Mark it used, so pruning keeps it (see `prune`).
                let _ = std::fs::File::options()
                    .append(true)
                    .open(&cached)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return Ok(component);
            }
            Err(e) => {
                tracing::warn!(file = %cached.display(), error = %e, "ignoring unusable cache entry")
            }
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the component cache {}", dir.display()))?;
    // Write aside and rename, so a concurrent reader never sees half a file.
    let partial = cached.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, &compiled)
        .and_then(|()| std::fs::rename(&partial, &cached))
        .with_context(|| format!("cannot write {}", cached.display()))?;
    // SAFETY: just produced by this engine's `precompile_component`.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    Ok(component)
}

/// Deletes the entries of `dir` that none of `in_use` (content hashes) needs and that nobody
/// has loaded for [`CACHE_KEEP`], and half-written files left by a compile that crashed.
/// Returns how many files went.
pub(super) fn prune(dir: &Path, in_use: &[&str]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let keep_for = if name.ends_with(".cwasm") {
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
    fn engines_share_entries_exactly_when_their_settings_match() {
        let plain = engine_fingerprint(&engine(false));
        assert_eq!(plain.len(), 16);
        assert!(plain.chars().all(|c| c.is_ascii_hexdigit()), "{plain}");
        assert_eq!(engine_fingerprint(&engine(false)), plain);
        assert_ne!(engine_fingerprint(&engine(true)), plain);
    }
}

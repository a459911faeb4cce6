//! [`InstanceLimits`]: the memory limit of one task's instance, as a whole.
//!
//! A component may hold several linear memories and tables (one per core module, or more).
//! wasmtime's own `StoreLimits` bounds each memory on its own, so a component with N
//! memories could use N times its plugin's limit and drain the pool every task shares.
//! [`InstanceLimits`] is the store's `ResourceLimiter` instead: it adds up every memory and
//! table the store creates or grows and refuses a growth that would take the sum past the
//! plugin's limit. A refused growth traps (so the task's status says "out of memory")
//! rather than returning -1 to the guest, whose allocator would abort with a trap that looks
//! like any other panic.

use wasmtime::ResourceLimiter;

/// What one table element costs against the memory limit: wasmtime keeps a pointer per
/// element.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The memory of one store's instances, counted against one limit.
#[derive(Debug)]
pub(super) struct InstanceLimits {
    /// Largest sum of every memory's and table's bytes.
    limit: usize,
    /// What the store's memories and tables have been allowed to grow to. A growth that is
    /// allowed here but then fails in wasmtime traps, ending the task, so it is never taken
    /// back.
    used: usize,
}

impl InstanceLimits {
    /// Limits for a store whose instances may use `limit` bytes in all.
    pub(super) fn new(limit: usize) -> Self {
        InstanceLimits { limit, used: 0 }
    }

    /// Counts a growth of `added` bytes; an error (a trap in the guest) past the limit.
    fn grow(&mut self, what: &str, added: usize, desired: usize) -> wasmtime::Result<bool> {
        match self.used.checked_add(added) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(true)
            }
            _ => Err(wasmtime::format_err!(
                "memory limit of {} MiB reached: growing {what} to {desired} would take the \
                 instance's memories and tables to {} bytes in all",
                self.limit >> 20,
                self.used.saturating_add(added)
            )),
        }
    }
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Past the memory's own maximum: wasmtime refuses it, and `memory_grow_failed`
            // turns that into a trap.
            return Ok(true);
        }
        self.grow("memory", desired.saturating_sub(current), desired)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing memory failed"))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(true);
        }
        let added = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        self.grow("a table", added, desired)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing a table failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn memories_are_counted_together_against_one_limit() {
        let mut limits = InstanceLimits::new(4 * MIB);
        // Two memories created at 1 MiB each, then each grown.
        assert!(limits.memory_growing(0, MIB, None).unwrap());
        assert!(limits.memory_growing(0, MIB, None).unwrap());
        assert!(limits.memory_growing(MIB, 2 * MIB, None).unwrap());
        let refused = limits
            .memory_growing(MIB, 2 * MIB + 64 * 1024, None)
            .expect_err("3 MiB + 1 MiB + 64 KiB is past 4 MiB");
        assert!(
            format!("{refused}").contains("memory limit of 4 MiB"),
            "{refused}"
        );
        // Exactly up to the limit is fine.
        assert!(limits.memory_growing(MIB, 2 * MIB, None).unwrap());
    }

    #[test]
    fn a_growth_wasmtime_then_fails_traps() {
        let mut limits = InstanceLimits::new(4 * MIB);
        assert!(limits.memory_growing(0, MIB, None).unwrap());
        let trap = limits
            .memory_grow_failed(wasmtime::format_err!("mmap failed"))
            .expect_err("a failed growth is a trap, not -1 to the guest");
        assert!(format!("{trap:#}").contains("growing memory"), "{trap:#}");
    }

    #[test]
    fn tables_count_against_the_memory_limit() {
        let mut limits = InstanceLimits::new(MIB);
        assert!(limits.memory_growing(0, MIB / 2, None).unwrap());
        let elements = MIB / 2 / TABLE_ELEMENT_BYTES;
        assert!(limits.table_growing(0, elements, None).unwrap());
        assert!(limits.table_growing(elements, elements + 1, None).is_err());
    }

    #[test]
    fn growing_past_a_declared_maximum_is_left_to_wasmtime() {
        let mut limits = InstanceLimits::new(MIB);
        assert!(limits.memory_growing(0, MIB / 2, Some(MIB / 2)).unwrap());
        // Not counted: wasmtime refuses it and reports the failure, which traps.
        assert!(limits.memory_growing(MIB / 2, MIB, Some(MIB / 2)).unwrap());
        assert!(limits
            .memory_grow_failed(wasmtime::format_err!("Memory maximum size exceeded"))
            .is_err());
        assert!(limits.memory_growing(0, MIB / 2, None).unwrap());
    }
}

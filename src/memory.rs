//! Handing memory the process has freed back to the system.
//!
//! A table is read as thousands of record batches whose buffers (tens of kilobytes each) are
//! freed once the columns are joined. glibc's allocator serves allocations of that size from its
//! heaps and keeps what is freed there for reuse, so the process went on holding the batches'
//! memory beside the joined table and everything allocated after it: a large share of the peak
//! of `compare` and of the rules was memory already freed (bench/RESULTS.md, (d) and (f)).
//! Mapping such allocations on their own instead (glibc's `M_MMAP_THRESHOLD`) cost the streaming
//! scorer, which allocates and frees batches all along, much of its time in page faults; so the
//! freed memory is handed back where a load frees it (as each column of a table is joined).

/// Gives the free memory of the allocator's heaps back to the system (glibc's `malloc_trim`):
/// the pages stay mapped but no longer count as the process's memory. Does nothing where the
/// allocator is not glibc's.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

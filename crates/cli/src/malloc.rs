//! glibc allocator settings for the verbs whose allocation patterns its defaults serve badly
//! (`inheritune_analysis` trims the heap itself after each layer). Off glibc they do nothing.

/// For `eval`: scoring allocates and frees logits of tens of MB per batch, which glibc would hand
/// back to the kernel and fault in again (page faults, `malloc_consolidate`: about 3 % of a CPU
/// `eval`). Freed memory stays in the heap for the next batch instead.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes the allocator's thresholds (it takes the allocator's lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

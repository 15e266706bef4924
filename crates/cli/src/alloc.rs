//! glibc malloc settings for a process that runs a whole rollout.
//!
//! With glibc's defaults a run's resident memory climbed ~2.5 MiB per wave of 300 writes
//! although its live heap did not: every thread that allocates gets an arena of its own,
//! freed blocks stay in them, and large buffers (a pod list page, a serialized status)
//! come from the heap, which is trimmed only at its top. At 1000 pods that was 63–67 MiB
//! resident for ~15 MiB of live objects (BENCHMARKS.md, issue 13). These settings keep
//! the heap close to what is live, at the cost of an arena lock shared by threads that
//! spend their time waiting on the network and on fsync, not in malloc.

/// `mallopt` parameters (glibc's `malloc.h`; part of its ABI, unchanged since 2.x).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    pub const M_TRIM_THRESHOLD: c_int = -1;
    pub const M_MMAP_THRESHOLD: c_int = -3;
    pub const M_ARENA_MAX: c_int = -8;

    // The declaration matches glibc's `int mallopt(int, int)`, which takes any values
    // (it refuses unknown ones by returning 0) and touches no memory of ours: calling it
    // is safe, so it is declared `safe` and this block is the only unsafe code allowed.
    #[allow(unsafe_code)]
    unsafe extern "C" {
        pub safe fn mallopt(param: c_int, value: c_int) -> c_int;
    }
}

/// The settings, as (parameter, value, name): one arena for all threads; blocks of 16 KiB
/// and more mapped on their own and unmapped when freed; the heap's top given back once
/// 32 KiB of it is free. At 1000 pods, 32/64 KiB peaked ~1.5 MiB higher and 8/16 KiB no
/// lower (BENCHMARKS.md, issue 13).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SETTINGS: [(std::ffi::c_int, std::ffi::c_int, &str); 3] = [
    (glibc::M_ARENA_MAX, 1, "M_ARENA_MAX"),
    (glibc::M_MMAP_THRESHOLD, 16 * 1024, "M_MMAP_THRESHOLD"),
    (glibc::M_TRIM_THRESHOLD, 32 * 1024, "M_TRIM_THRESHOLD"),
];

/// Apply the settings, first thing in `main` before any thread starts; returns the names
/// of the settings glibc refused (none on glibc; everything else is left as it is). What
/// `MALLOC_ARENA_MAX` and the like set is replaced, so every run has the same allocator.
/// A refused setting costs memory, not correctness: it is only logged.
pub fn tune() -> Vec<&'static str> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        SETTINGS
            .iter()
            .filter(|(param, value, _)| glibc::mallopt(*param, *value) != 1)
            .map(|(_, _, name)| *name)
            .collect()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glibc_takes_every_setting() {
        let refused = super::tune();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(refused.is_empty(), "mallopt refused {refused:?}");
        }
    }
}

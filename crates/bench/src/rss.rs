//! Peak resident memory of a child process, from `VmHWM` in `/proc/<pid>/status`.
//! The kernel keeps the high-water mark itself, so sampling only has to catch the
//! process before it exits; the last successful read is the peak.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// `VmHWM` in KiB, if the process still exists.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits for `child`, sampling its peak RSS every `every`, and kills it at `deadline`.
/// Returns the exit status and the largest `VmHWM` seen (KiB).
pub fn wait_sampling(
    child: &mut Child,
    every: Duration,
    deadline: Instant,
) -> std::io::Result<(ExitStatus, u64)> {
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak));
        }
        if Instant::now() > deadline {
            child.kill()?;
        }
        std::thread::sleep(every);
    }
}

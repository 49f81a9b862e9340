//! CPU time and memory of processes and threads, from /proc (Linux).

use std::time::Duration;

/// Clock ticks per second for /proc CPU times (`getconf CLK_TCK`, 100 almost everywhere).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User + system CPU time from a `stat` file (process or thread).
fn cpu_from_stat(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = ticks_per_second();
    Some(Duration::from_millis((utime + stime) * 1000 / ticks))
}

pub fn process_cpu(pid: u32) -> Option<Duration> {
    cpu_from_stat(&format!("/proc/{pid}/stat"))
}

/// CPU time of a thread of this process, by id from [`thread_id`].
pub fn thread_cpu(tid: &str) -> Option<Duration> {
    cpu_from_stat(&format!("/proc/self/task/{tid}/stat"))
}

/// The calling thread's id, as it appears under /proc/self/task.
pub fn thread_id() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// A field of /proc/<pid>/status in MiB (`VmRSS`, `VmHWM`).
pub fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time the hypervisor gave to other guests while this machine's CPUs wanted to run
/// (`steal` in the `cpu` line of /proc/stat, all CPUs together). Zero on bare metal.
pub fn machine_steal() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let steal: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(Duration::from_millis(steal * 1000 / ticks_per_second()))
}

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

/// A `stat` file's command name and the fields after it (the first is the state).
fn read_stat(path: &str) -> Option<(String, Vec<u64>)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: it ends at the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    // The state is a letter; it reads as 0, and the numbers keep their positions.
    let fields = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((comm, fields))
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1000 / ticks_per_second())
}

/// User + system CPU time from a `stat` file (process or thread).
fn cpu_from_stat(path: &str) -> Option<Duration> {
    let (_, fields) = read_stat(path)?;
    Some(ticks(fields.get(11)? + fields.get(12)?))
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

/// Seconds of the PostgreSQL server's CPU since `before` (a [`postgres_cpu`] reading), or
/// `None` when either reading is missing.
pub fn postgres_cpu_since(before: Option<Duration>) -> Option<f64> {
    postgres_cpu()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before).as_secs_f64())
}

/// CPU time used so far by a PostgreSQL server running on this machine: the user and system
/// time of every `postgres` process, plus what the postmaster collected from children that
/// have exited (backends of closed connections, autovacuum workers). `None` if no
/// postmaster is found. It counts the whole server, so only runs with nothing else using
/// it measure hookd's share.
pub fn postgres_cpu() -> Option<Duration> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((comm, fields)) = read_stat(&format!("/proc/{pid}/stat"))
            && comm == "postgres"
        {
            processes.push((pid, fields));
        }
    }
    let is_postgres = |pid: u64| processes.iter().any(|(p, _)| u64::from(*p) == pid);
    // The postmaster is the postgres process whose parent is not one (field 1: ppid).
    let postmaster = processes
        .iter()
        .find(|(_, f)| f.get(1).is_some_and(|ppid| !is_postgres(*ppid)))?;
    let own: u64 = processes
        .iter()
        .map(|(_, f)| f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0))
        .sum();
    let reaped = postmaster.1.get(13).unwrap_or(&0) + postmaster.1.get(14).unwrap_or(&0);
    Some(ticks(own + reaped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_command_name_holding_spaces_and_parentheses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        // pid (comm) state ppid … utime stime cutime cstime …
        std::fs::write(
            &path,
            "42 (post (gres) x) S 7 42 42 0 -1 0 1 2 3 4 150 50 30 20 20 0\n",
        )
        .unwrap();
        let (comm, fields) = read_stat(path.to_str().unwrap()).unwrap();
        assert_eq!(comm, "post (gres) x");
        assert_eq!(fields[1], 7, "ppid");
        assert_eq!((fields[11], fields[12]), (150, 50), "utime, stime");
        assert_eq!((fields[13], fields[14]), (30, 20), "cutime, cstime");
        let cpu = cpu_from_stat(path.to_str().unwrap()).unwrap();
        assert_eq!(cpu, ticks(200));
    }
}

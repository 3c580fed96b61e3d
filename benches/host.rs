//! What machine the figures come from: the CPU model and its SIMD flags, read from
//! `/proc/cpuinfo` (Linux), plus the number of CPUs the process may use, and how busy the rest
//! of the machine was while a point was measured ([`CpuMeter`]).

/// Flags worth printing next to kernel figures.
const FLAGS_OF_INTEREST: [&str; 9] = [
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
    "avx512_bf16",
];

/// The `model name` of the first CPU, or `unknown`.
pub fn cpu_model() -> String {
    cpuinfo_field("model name").unwrap_or_else(|| "unknown".to_string())
}

/// Which of the interesting flags the first CPU reports, in a fixed order, e.g.
/// `avx2 fma avx512f ... -amx_int8` (a leading `-` marks a flag that is absent).
pub fn cpu_flags() -> String {
    let Some(flags) = cpuinfo_field("flags") else {
        return "unknown (no /proc/cpuinfo flags)".to_string();
    };
    let present: Vec<&str> = flags.split_whitespace().collect();
    FLAGS_OF_INTEREST
        .iter()
        .map(|f| {
            if present.contains(f) {
                f.to_string()
            } else {
                format!("-{f}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPUs available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One line for the top of a benchmark's output.
pub fn describe_host() -> String {
    format!(
        "cpu: {} ({} CPUs available); flags: {}",
        cpu_model(),
        cpus(),
        cpu_flags()
    )
}

fn cpuinfo_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}

/// CPU time counters for one window: the whole machine's busy and total time from
/// `/proc/stat` and this process's own time from `/proc/self/stat`, all in clock ticks.
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    machine_busy: u64,
    machine_total: u64,
    own: u64,
    /// CPUs listed in `/proc/stat`.
    machine_cpus: usize,
}

impl CpuMeter {
    /// Reads the counters now; `None` where `/proc` is missing (not Linux).
    pub fn now() -> Option<CpuMeter> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let machine_total = (0..8).map(field).sum();
        let machine_busy = machine_total - field(3) - field(4);
        let machine_cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let after_comm: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        let own = after_comm.get(11)?.parse::<u64>().ok()? + after_comm.get(12)?.parse::<u64>().ok()?;
        Some(CpuMeter {
            machine_busy,
            machine_total,
            own,
            machine_cpus: machine_cpus.max(1),
        })
    }

    /// CPUs kept busy by other processes, on average, between `self` (earlier) and `later`:
    /// 0 on an otherwise idle machine, up to the CPU count. `None` if no time passed.
    pub fn other_busy_cpus(&self, later: &CpuMeter) -> Option<f64> {
        let total = later.machine_total.checked_sub(self.machine_total)?;
        if total == 0 {
            return None;
        }
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let own = later.own.saturating_sub(self.own);
        Some(busy.saturating_sub(own) as f64 / total as f64 * self.machine_cpus as f64)
    }
}

/// The 1-minute load average, or `None` where `/proc/loadavg` is missing.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The peak resident set size of this process so far (`VmHWM` in `/proc/self/status`), in
/// bytes, or `None` where that file is missing.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// The resident set size of this process now (`VmRSS`), in bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_reads_proc_where_it_exists() {
        if std::path::Path::new("/proc/stat").exists() {
            let a = CpuMeter::now().expect("readable /proc");
            let mut x = 0u64;
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let b = CpuMeter::now().unwrap();
            if let Some(other) = a.other_busy_cpus(&b) {
                assert!((0.0..=a.machine_cpus as f64).contains(&other), "{other}");
            }
        }
        assert!(!describe_host().is_empty());
    }
}

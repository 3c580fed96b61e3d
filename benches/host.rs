//! What machine the figures come from: the CPU model and its SIMD flags, read from
//! `/proc/cpuinfo` (Linux), plus the number of CPUs the process may use.

/// Flags worth printing next to kernel figures.
const FLAGS_OF_INTEREST: [&str; 9] =
    ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16"];

/// The `model name` of the first CPU, or `unknown`.
pub fn cpu_model() -> String {
    cpuinfo_field("model name").unwrap_or_else(|| "unknown".to_string())
}

/// Which of the interesting flags the first CPU reports, in a fixed order, e.g.
/// `avx2 fma avx512f ... -amx_int8` (a leading `-` marks a flag that is absent).
pub fn cpu_flags() -> String {
    let Some(flags) = cpuinfo_field("flags") else { return "unknown (no /proc/cpuinfo flags)".to_string() };
    let present: Vec<&str> = flags.split_whitespace().collect();
    FLAGS_OF_INTEREST
        .iter()
        .map(|f| if present.contains(f) { f.to_string() } else { format!("-{f}") })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPUs available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One line for the top of a benchmark's output.
pub fn describe_host() -> String {
    format!("cpu: {} ({} CPUs available); flags: {}", cpu_model(), cpus(), cpu_flags())
}

fn cpuinfo_field(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}

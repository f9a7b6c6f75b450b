//! The standard `process_*` series (CPU, memory, file descriptors, start time), read from
//! `/proc` at each scrape, as every Prometheus client library exports them.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second of `/proc/<pid>/stat` times: USER_HZ, 100 on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// What a scrape reports about this process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: i64,
    pub virtual_bytes: i64,
    pub start_time_seconds: f64,
    pub open_fds: i64,
    pub max_fds: i64,
}

/// From the text of `/proc/self/stat`: (CPU seconds, start in seconds after boot, virtual
/// bytes). The command name in parentheses may itself hold spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<(f64, f64, i64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 of proc(5) (state): utime is field 14, stime 15, starttime 22,
    // vsize 23.
    let number = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    let cpu = (number(14)? + number(15)?) as f64 / TICKS_PER_SECOND;
    let started = number(22)? as f64 / TICKS_PER_SECOND;
    Some((cpu, started, number(23)? as i64))
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn parse_resident(status: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
pub fn parse_boot_time(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft limit of open files from `/proc/self/limits`.
pub fn parse_max_fds(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// This process, now; `None` where `/proc` is not there to read.
pub fn sample() -> Option<ProcessSample> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let (cpu_seconds, started, virtual_bytes) = parse_stat(&read("/proc/self/stat")?)?;
    Some(ProcessSample {
        cpu_seconds,
        virtual_bytes,
        resident_bytes: parse_resident(&read("/proc/self/status")?)?,
        start_time_seconds: parse_boot_time(&read("/proc/stat")?)? + started,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as i64,
        max_fds: read("/proc/self/limits")
            .as_deref()
            .and_then(parse_max_fds)
            .unwrap_or(-1),
    })
}

/// The collector to register once per registry.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sample) = sample() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(sample.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                sample.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                sample.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                sample.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                sample.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(sample.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_found_after_a_command_name_with_spaces() {
        let stat = "4242 (dynamo (op) x) S 1 4242 4242 0 -1 4194560 1021 0 0 0 250 75 0 0 20 0 \
                    9 0 123400 987654321 2450 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((3.25, 1234.0, 987_654_321)));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
    }

    #[test]
    fn status_stat_and_limits_are_read() {
        let status = "Name:\tdynamo-operator\nVmPeak:\t  20000 kB\nVmRSS:\t   15872 kB\n";
        assert_eq!(parse_resident(status), Some(15872 * 1024));
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1764700000\n"),
            Some(1_764_700_000.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576));
    }

    #[test]
    fn this_process_is_sampled_and_encoded() {
        let sample = sample().expect("/proc is readable here");
        assert!(
            sample.resident_bytes > 0 && sample.open_fds > 0,
            "{sample:?}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            sample.start_time_seconds <= now + 1.0
                && sample.start_time_seconds > now - 86_400.0 * 365.0
        );
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for series in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.contains(&format!("\n{series}")),
                "{series} missing:\n{text}"
            );
        }
    }
}

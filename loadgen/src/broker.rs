//! What the broker process costs, read from /proc: CPU time (utime + stime of
//! `/proc/<pid>/stat`, in clock ticks) and resident memory (`VmRSS` of `/proc/<pid>/status`).
//!
//! The tick length comes from `getconf CLK_TCK` (run once; 100 where that fails, the value
//! on every common Linux). CPU time includes all of the broker's threads; children are not
//! counted (brokers under test run as one process).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

/// The broker process being measured.
#[derive(Debug, Clone)]
pub struct Broker {
    pid: u32,
    ticks_per_second: u64,
}

impl Broker {
    /// The process `pid`, which must exist.
    pub fn new(pid: u32) -> anyhow::Result<Self> {
        let broker = Self {
            pid,
            ticks_per_second: clock_ticks(),
        };
        broker
            .cpu_seconds()
            .with_context(|| format!("broker process {pid}"))?;
        Ok(broker)
    }

    fn path(&self, file: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{file}", self.pid))
    }

    /// CPU seconds (user + system) the process used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(self.path("stat"))?;
        let ticks = parse_cpu_ticks(&stat).context("unexpected /proc/<pid>/stat format")?;
        Ok(ticks as f64 / self.ticks_per_second as f64)
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(self.path("status"))?;
        parse_rss_bytes(&status).context("no VmRSS in /proc/<pid>/status")
    }
}

/// CPU seconds this process (the generator) used so far.
pub fn own_cpu_seconds() -> Option<f64> {
    Broker::new(std::process::id())
        .and_then(|own| own.cpu_seconds())
        .ok()
}

/// Clock ticks per second from `getconf CLK_TCK`, else 100.
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: field 3 (state) is the first; utime is field 14, the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS:   1234 kB` in bytes.
fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_after_an_awkward_name() {
        let stat = "4242 (my (odd) broker) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 8 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_in_bytes() {
        let status = "Name:\tmqgate\nVmPeak:\t  9999 kB\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = Broker::new(std::process::id()).unwrap();
        assert!(me.cpu_seconds().unwrap() >= 0.0);
        assert!(me.rss_bytes().unwrap() > 0);
    }
}

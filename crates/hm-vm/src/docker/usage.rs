//! What a step used in its container, read from the container's own
//! cgroup by the command that runs the step, before and after it.
//!
//! The daemon's figures cost too much per step: a one-shot `stats` waits
//! for its collector's next round (about 0.7 s on Docker 20.10), and
//! `State.OOMKilled` is only set once the whole container has stopped,
//! which a chain's container does not between steps. The cgroup files a
//! container sees at `/sys/fs/cgroup` (its own group: Docker mounts it so
//! on cgroup v1, and gives each container a cgroup namespace on v2) are
//! read with shell builtins instead, at no extra call to the daemon:
//! CPU time (`cpuacct.usage`, `cpu.stat`), the peak of memory
//! (`memory.max_usage_in_bytes`, `memory.peak`), the count of processes
//! the kernel killed over the memory limit (`oom_kill` in
//! `memory.oom_control`, `memory.events`) and of forks it refused over
//! the process limit (`max` in `pids.events`). The wrapper writes them as the
//! last line of the step's standard error, after a marker with a nonce of
//! that exec; the line is taken out of the step's output.
//!
//! The peak is the container's since it started: exact for the first step
//! in a container, and for a later step of a chain only when that step
//! went above the steps before it (else it is not reported).

use crate::backend::LogLine;
use crate::limits::{Limits, StepUsage};

/// Runs the step's command (`$1`), then kills every process it left (all
/// but the container's init: `kill -1` spares it and the caller), so a
/// container handed to the next step holds nothing of this one but files;
/// around it, reads the container's cgroup and writes the figures after
/// the marker with nonce `$2` on standard error.
pub(super) const STEP_WRAPPER: &str = r#"u() {
  c=- p=- o=- f=- g=/sys/fs/cgroup
  {
    if [ -r $g/cpuacct/cpuacct.usage ]; then
      read -r c < $g/cpuacct/cpuacct.usage
      read -r p < $g/memory/memory.max_usage_in_bytes
      while read -r k v; do [ "$k" = oom_kill ] && o=$v; done < $g/memory/memory.oom_control
      while read -r k v; do [ "$k" = max ] && f=$v; done < $g/pids/pids.events
    elif [ -r $g/cpu.stat ]; then
      while read -r k v; do [ "$k" = usage_usec ] && c=${v}000; done < $g/cpu.stat
      read -r p < $g/memory.peak
      while read -r k v; do [ "$k" = oom_kill ] && o=$v; done < $g/memory.events
      while read -r k v; do [ "$k" = max ] && f=$v; done < $g/pids.events
    fi
  } 2>/dev/null
}
u; b="$c $p $o $f"
sh -c "$1"; s=$?
kill -9 -1 2>/dev/null
u; printf '\036hm-usage:%s %s %s %s %s %s\n' "$2" "$b" "$c" "$p" "$o" "$f" >&2
exit $s"#;

/// The figures of one exec's step, as they come out of its standard
/// error.
#[derive(Debug)]
pub(super) struct UsageLine {
    marker: Vec<u8>,
    /// What the figures said, once they came.
    readings: Option<[Option<u64>; 8]>,
}

impl UsageLine {
    /// For the exec whose wrapper was given `nonce`.
    pub(super) fn new(nonce: &str) -> Self {
        UsageLine {
            marker: format!("\x1ehm-usage:{nonce} ").into_bytes(),
            readings: None,
        }
    }

    /// A line of standard error as the step wrote it: the figures are
    /// taken out (with what comes before them on their line, a last line
    /// the step did not end, kept as such).
    pub(super) fn filter(&mut self, mut line: LogLine) -> Option<LogLine> {
        if line.partial || !line.eol {
            return Some(line);
        }
        let Some(at) = find(&line.bytes, &self.marker) else {
            return Some(line);
        };
        let figures = String::from_utf8_lossy(&line.bytes[at + self.marker.len()..]).into_owned();
        let mut readings = [None; 8];
        for (slot, word) in readings.iter_mut().zip(figures.split_whitespace()) {
            *slot = word.parse().ok();
        }
        self.readings = Some(readings);
        line.bytes.truncate(at);
        line.eol = false;
        (!line.bytes.is_empty()).then_some(line)
    }

    /// What the step used under `limits`; `first`: no step ran in the
    /// container before it (its peak is the step's, whatever it is).
    pub(super) fn usage(&self, first: bool, limits: &Limits) -> StepUsage {
        let under = StepUsage {
            memory_limit: limits.memory,
            pids_limit: limits.pids,
            ..StepUsage::default()
        };
        let Some([cpu_before, peak_before, oom_before, refused_before, cpu, peak, oom, refused]) = self.readings else {
            return under;
        };
        let rose = |after: Option<u64>, before: Option<u64>| after.zip(before).is_some_and(|(a, b)| a > b);
        StepUsage {
            cpu_ms: cpu
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before) / 1_000_000),
            peak_memory_bytes: peak.filter(|_| first || rose(peak, peak_before)),
            oom_killed: rose(oom, oom_before),
            pids_refused: rose(refused, refused_before),
            ..under
        }
    }
}

/// Where `needle` starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LogStream;

    fn line(text: &str) -> LogLine {
        LogLine {
            stream: LogStream::Stderr,
            bytes: text.as_bytes().to_vec(),
            partial: false,
            eol: true,
        }
    }

    #[test]
    fn the_figures_are_taken_out_of_the_output() {
        let mut usage = UsageLine::new("n0nce");
        assert_eq!(usage.filter(line("a line")), Some(line("a line")));
        // Another exec's nonce is the step's output.
        let forged = "\x1ehm-usage:other 1 1 0 0 9 9 1 1";
        assert_eq!(usage.filter(line(forged)), Some(line(forged)));
        assert_eq!(usage.usage(true, &Limits::default()), StepUsage::default());
        let tail = usage.filter(line("no newline\x1ehm-usage:n0nce 1000000 100 0 3 251000000 4096 1 3"));
        let mut kept = line("no newline");
        kept.eol = false;
        assert_eq!(tail, Some(kept));
        let limits = Limits {
            memory: Some(64 << 20),
            ..Limits::defaults()
        };
        assert_eq!(
            usage.usage(false, &limits),
            StepUsage {
                peak_memory_bytes: Some(4096),
                cpu_ms: Some(250),
                oom_killed: true,
                memory_limit: Some(64 << 20),
                pids_limit: Some(crate::limits::DEFAULT_PIDS),
                ..StepUsage::default()
            }
        );
    }

    #[test]
    fn a_peak_reached_before_the_step_is_not_its_own() {
        let none = Limits::default();
        let mut usage = UsageLine::new("n");
        assert_eq!(usage.filter(line("\x1ehm-usage:n 0 500 2 0 0 500 2 4")), None);
        let later = usage.usage(false, &none);
        assert_eq!((later.peak_memory_bytes, later.oom_killed), (None, false));
        assert!(later.pids_refused, "forks were refused during the step");
        assert_eq!(usage.usage(true, &none).peak_memory_bytes, Some(500));
        // A cgroup the container cannot read: nothing measured.
        assert_eq!(usage.filter(line("\x1ehm-usage:n - - - - - - - -")), None);
        assert_eq!(usage.usage(true, &none), StepUsage::default());
    }
}

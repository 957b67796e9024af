//! Sample statistics: percentiles and the min/median/p90/p99/max summaries the report prints.

use serde_json::{json, Value};

/// Percentile of ascending `sorted` with linear interpolation between ranks (numpy's default),
/// so the median of an even count is the mean of the middle pair. NaN when there are no samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// Three decimals are plenty for ms and MiB and keep the JSON line readable.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(mut samples: Vec<f64>) -> Summary {
        samples.sort_by(f64::total_cmp);
        let s = &samples;
        Summary {
            n: s.len(),
            min: percentile(s, 0.0),
            median: percentile(s, 50.0),
            p90: percentile(s, 90.0),
            p99: percentile(s, 99.0),
            max: percentile(s, 100.0),
        }
    }

    /// serde_json turns NaN (no samples) into null, which is what a reader should see.
    pub fn json(&self) -> Value {
        json!({"n": self.n, "min": r3(self.min), "median": r3(self.median), "p90": r3(self.p90), "p99": r3(self.p99), "max": r3(self.max)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_and_handle_edges() {
        assert!(percentile(&[], 50.0).is_nan());
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        let hundred: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 90.0), 91.0);
        assert_eq!(percentile(&hundred, 0.0), 1.0);
        assert_eq!(percentile(&hundred, 100.0), 101.0);
    }

    #[test]
    fn summary_sorts_first() {
        let s = Summary::of(vec![5.0, 1.0, 3.0]);
        assert_eq!((s.n, s.min, s.median, s.max), (3, 1.0, 3.0, 5.0));
        assert!(Summary::of(vec![]).json()["median"].is_null());
    }
}

//! How many gradient steps a window can have when the stream must keep up
//! with real time: the dreaming stream measures what a step costs, and
//! before each window spends no more than the time left before its output
//! is due, nor, on average, more than a share of the audio time a window
//! stands for. When even one step does not fit, the window is not dreamed
//! (its change fades out and back in over the neighbouring windows), and
//! the estimate relaxes so that steps come back once the machine has time.

/// Of the audio time a window's hop stands for, the share dreaming may use
/// on average: the rest is headroom for everything else on the machine.
pub const SUSTAINED_SHARE: f64 = 0.6;
/// Of the time left before the output is due, the share one window may
/// use: a misjudged step must not cause an underrun.
pub const DEADLINE_SHARE: f64 = 0.7;
/// How much a skipped window relaxes the cost estimate, so that a stream
/// that stopped dreaming because the machine was busy tries again.
const RELAX: f64 = 0.9;
/// Weight of the newest measurement in the running cost estimates.
const NEW_WEIGHT: f64 = 0.3;

/// The running cost estimates and the last plan.
#[derive(Debug, Clone, Default)]
pub struct Effort {
    /// Seconds per gradient step of one window (`None` before the first).
    per_step: Option<f64>,
    /// Seconds per window besides its steps.
    fixed: f64,
    /// Steps the last window was given.
    last: usize,
    /// Windows dreamed with fewer steps than asked, since the start.
    reduced: u64,
    /// Windows not dreamed at all, since the start.
    skipped: u64,
}

impl Effort {
    /// No measurements yet: the first window gets one step, to measure.
    pub fn new() -> Self {
        Self::default()
    }

    /// The steps for the next window: `asked`, or fewer so that the window
    /// takes at most [`DEADLINE_SHARE`] of the `deadline` (seconds until
    /// its output is due) and at most [`SUSTAINED_SHARE`] of `hop_seconds`
    /// (the audio time one window stands for). 0: do not dream it.
    pub fn plan(&mut self, asked: usize, deadline: f64, hop_seconds: f64) -> usize {
        let steps = match self.per_step {
            // Before anything is measured one step is the safe guess: a
            // slow machine must not miss its first deadline.
            None => asked.min(1),
            Some(per_step) => {
                let room = (DEADLINE_SHARE * deadline).min(SUSTAINED_SHARE * hop_seconds) - self.fixed;
                let fit = if room > 0.0 {
                    (room / per_step.max(1e-9)).floor()
                } else {
                    0.0
                };
                asked.min(fit.min(usize::MAX as f64) as usize)
            }
        };
        if steps == 0 && asked > 0 {
            self.skipped += 1;
            // Nothing is measured while no step runs: assume the machine
            // is getting faster, so that steps return when it is.
            self.per_step = self.per_step.map(|c| c * RELAX);
            self.fixed *= RELAX;
        } else if steps < asked {
            self.reduced += 1;
        }
        self.last = steps;
        steps
    }

    /// Records that a window of `steps` steps took `seconds`.
    pub fn record(&mut self, steps: usize, seconds: f64) {
        if steps == 0 {
            self.fixed = mix(self.fixed, seconds);
            return;
        }
        let per_step = ((seconds - self.fixed) / steps as f64).max(seconds / (4.0 * steps as f64));
        self.per_step = Some(self.per_step.map_or(per_step, |c| mix(c, per_step)));
    }

    /// Steps the last window was given.
    pub fn last(&self) -> usize {
        self.last
    }

    /// Windows given fewer steps than asked, and windows not dreamed.
    pub fn cut_windows(&self) -> (u64, u64) {
        (self.reduced, self.skipped)
    }
}

fn mix(old: f64, new: f64) -> f64 {
    old + NEW_WEIGHT * (new - old)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine where a step costs `per_step` and a window `fixed` more.
    fn run(
        effort: &mut Effort,
        asked: usize,
        per_step: f64,
        fixed: f64,
        windows: usize,
        deadline: f64,
    ) -> Vec<usize> {
        (0..windows)
            .map(|_| {
                let steps = effort.plan(asked, deadline, 0.5);
                effort.record(steps, fixed + per_step * steps as f64);
                steps
            })
            .collect()
    }

    #[test]
    fn a_fast_machine_gets_every_step() {
        let mut e = Effort::new();
        let plan = run(&mut e, 4, 0.010, 0.002, 20, 0.5);
        assert!(plan[1..].iter().all(|&s| s == 4), "{plan:?}");
        assert_eq!(e.cut_windows(), (1, 0), "only the first, measuring window");
    }

    #[test]
    fn a_slow_machine_gets_as_many_steps_as_keep_up() {
        // 32 steps of 40 ms would take 1.3 s per 0.5 s hop.
        let mut e = Effort::new();
        let plan = run(&mut e, 32, 0.040, 0.002, 30, 10.0);
        assert_eq!(plan[0], 1, "no estimate yet: one step, to measure");
        // Settled: 60% of the hop, (0.3 - 0.002) / 0.04 = 7 steps.
        assert!(plan[5..].iter().all(|&s| s == 7), "{plan:?}");
        // A tight deadline (the output ring holds 0.2 s) allows fewer.
        let now = e.plan(32, 0.2, 0.5);
        assert_eq!(now, 3, "0.7 x 0.2 s at 40 ms a step");
    }

    #[test]
    fn windows_are_skipped_when_no_step_fits_and_steps_come_back() {
        let mut e = Effort::new();
        run(&mut e, 8, 0.5, 0.0, 1, 10.0);
        // A step takes longer than the hop allows: skip.
        let plan = run(&mut e, 8, 0.5, 0.0, 3, 10.0);
        assert!(plan.iter().all(|&s| s == 0), "{plan:?}");
        assert!(e.cut_windows().1 >= 3);
        // The machine is free again: within a few windows steps return
        // and reach what is asked.
        let plan = run(&mut e, 8, 0.005, 0.0, 40, 10.0);
        let back = plan.iter().position(|&s| s > 0).expect("steps return");
        assert!(back < 30, "{plan:?}");
        assert_eq!(*plan.last().unwrap(), 8, "{plan:?}");
    }
}

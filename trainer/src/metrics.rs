//! Training metrics: the confusion matrix, per-epoch records and their
//! text forms (CSV for tools, an aligned table for people).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::run::csv_table;

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Number of classes.
    pub classes: usize,
    /// Row-major counts: `counts[truth * classes + predicted]`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Records one prediction.
    ///
    /// # Panics
    /// If either class is out of range: that is a bug in the caller.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        assert!(
            truth < self.classes && predicted < self.classes,
            "class out of range"
        );
        self.counts[truth * self.classes + predicted] += 1;
    }

    /// How often `truth` was predicted as `predicted`.
    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// Predictions recorded.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Fraction predicted correctly (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.classes).map(|c| self.get(c, c)).sum();
        ratio(correct, self.total())
    }

    /// Per class: the fraction of its examples predicted correctly (recall).
    pub fn recall(&self) -> Vec<f64> {
        (0..self.classes)
            .map(|t| ratio(self.get(t, t), (0..self.classes).map(|p| self.get(t, p)).sum()))
            .collect()
    }

    /// An aligned table with class names: rows are true classes, columns
    /// predictions, and a last column with each class's recall.
    pub fn to_table(&self, names: &[String]) -> String {
        let label = |i: usize| names.get(i).cloned().unwrap_or_else(|| format!("class{i}"));
        let name_w = (0..self.classes)
            .map(|i| label(i).len())
            .max()
            .unwrap_or(0)
            .max(10);
        let count_w = self
            .counts
            .iter()
            .map(|c| c.to_string().len())
            .max()
            .unwrap_or(1)
            .max(3);
        let abbrev = |i: usize| {
            let l = label(i);
            l.chars().take(count_w).collect::<String>()
        };
        let mut out = String::new();
        let _ = write!(out, "{:>name_w$} |", "true \\ pred");
        for p in 0..self.classes {
            let _ = write!(out, " {:>count_w$}", abbrev(p));
        }
        out.push_str(" | recall\n");
        let _ = writeln!(
            out,
            "{}",
            "-".repeat(name_w + 2 + (count_w + 1) * self.classes + 9)
        );
        for (t, recall) in self.recall().into_iter().enumerate() {
            let _ = write!(out, "{:>name_w$} |", label(t));
            for p in 0..self.classes {
                let _ = write!(out, " {:>count_w$}", self.get(t, p));
            }
            let _ = writeln!(out, " | {:5.1}%", 100.0 * recall);
        }
        let _ = writeln!(
            out,
            "accuracy {:.2}% ({} of {})",
            100.0 * self.accuracy(),
            (0..self.classes).map(|c| self.get(c, c)).sum::<u64>(),
            self.total()
        );
        out
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Optimiser steps taken by the end of the epoch.
    pub step: u64,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Training accuracy over the epoch's batches (batch-norm in train mode).
    pub train_accuracy: f64,
    /// Mean validation cross-entropy.
    pub val_loss: f64,
    /// Validation accuracy per clip (window-averaged probabilities).
    pub val_accuracy: f64,
    /// Validation accuracy per single window.
    #[serde(default)]
    pub val_window_accuracy: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Training seconds so far (all sessions of a resumed run together).
    pub seconds: f64,
    /// Training throughput during this epoch.
    pub clips_per_second: f64,
    /// The validation confusion matrix.
    pub confusion: ConfusionMatrix,
}

/// Header of [`metrics_csv`].
pub const CSV_HEADER: &str =
    "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,val_window_accuracy,lr,seconds,clips_per_second";

/// The epochs as CSV, header included.
pub fn metrics_csv(epochs: &[EpochMetrics]) -> String {
    csv_table(
        CSV_HEADER,
        epochs.iter().map(|m| {
            format!(
                "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:e},{:.2},{:.2}",
                m.epoch,
                m.step,
                m.train_loss,
                m.train_accuracy,
                m.val_loss,
                m.val_accuracy,
                m.val_window_accuracy,
                m.lr,
                m.seconds,
                m.clips_per_second
            )
        }),
    )
}

/// Every epoch's confusion matrix, newest last, as one text file.
pub fn confusion_report(epochs: &[EpochMetrics], names: &[String]) -> String {
    let mut out = String::new();
    for m in epochs {
        let _ = writeln!(
            out,
            "epoch {} (step {}): validation confusion matrix",
            m.epoch, m.step
        );
        out.push_str(&m.confusion.to_table(names));
        out.push('\n');
    }
    out
}

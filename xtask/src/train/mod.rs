//! The pieces of `train-tiny`: run settings and presets, the data stream, the schedule,
//! the training loop with checkpoints, and the final evaluation.

pub mod data;
pub mod eval;
pub mod run;
pub mod schedule;
pub mod spec;

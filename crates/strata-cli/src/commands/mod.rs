//! One module per subcommand.

pub mod capture;
pub mod export;
pub mod generate;
pub mod info;
mod input;
pub mod kappatune;
pub mod massive;
pub mod merge;
mod model_args;
pub mod ppl;
pub mod report;
pub mod serve_device;
mod shard;
pub mod sparsity;
pub mod spectra;
pub mod steer;
pub mod void;

//! Weights on disk behind one trait, [`WeightSource`]: safetensors files (single or sharded)
//! and GGUF files, memory-mapped and read one tensor at a time, plus the writer used to export
//! checkpoints.

pub mod gguf;
mod host;
mod source;
mod store;
mod writer;

pub use host::HostTensor;
pub use source::WeightSource;
pub use store::{TensorInfo, WeightStore};
pub use writer::write_safetensors;

//! Weights on disk: safetensors files (single or sharded), memory-mapped and read one tensor
//! at a time, plus the writer used to export checkpoints.

mod host;
mod store;
mod writer;

pub use host::HostTensor;
pub use store::{TensorInfo, WeightStore};
pub use writer::write_safetensors;

//! The model zoo: one shared decoder for GPT-2, GPT-NeoX, Llama, Mistral and Qwen2, and a
//! BERT encoder, behind one [`Model`] type.

pub mod attention;
pub mod bert;
pub mod cache;
pub mod decoder;
pub mod export;
pub mod gguf_model;
pub mod init;
pub mod loader;
pub mod mlp;
pub mod names;
pub mod norm;
pub mod rotary;

mod model;

pub use cache::KvCache;
pub use model::{Architecture, Model};

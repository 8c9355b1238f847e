//! The model zoo: one shared decoder for GPT-2, GPT-NeoX, Llama, Mistral and Qwen2, and a
//! BERT encoder, behind one [`Model`] type.
//!
//! The layers themselves are internal; what is public is [`Model`], the [`Decoder`] that
//! training works on, building a fresh decoder ([`init_decoder`]), writing one as an HF folder
//! ([`save_hf`]) and reading `.gguf` files ([`GgufModel`]).

mod attention;
mod bert;
mod cache;
mod decoder;
mod export;
mod flex;
mod gguf_model;
pub(crate) mod hf_names;
mod init;
mod loader;
mod mlp;
mod model;
mod names;
pub(crate) mod norm;
mod rotary;

pub use cache::KvCache;
pub use decoder::Decoder;
pub use export::{hf_config_json, save_hf};
pub use gguf_model::{GGUF_ARCHITECTURES, GgufModel, GgufSource, is_gguf};
pub use init::{INIT_STD, check_config, init_decoder};
pub use model::Model;

//! [`Paths`]: where the committed datasets live, spelled once for every command.

use std::path::{Path, PathBuf};

/// The dataset paths below a workspace root.
#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// The paths of the workspace this xtask belongs to.
    pub fn workspace() -> Self {
        Self {
            root: crate::workspace_root(),
        }
    }

    /// The paths below another root (a copy of the datasets).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// `datasets/kjv`: the King James Bible splits and their baselines.
    pub fn kjv_dir(&self) -> PathBuf {
        self.root.join("datasets/kjv")
    }

    /// `datasets/kjv/{split}.txt` (`train`, `valid`, `test`).
    pub fn kjv(&self, split: &str) -> PathBuf {
        self.kjv_dir().join(format!("{split}.txt"))
    }

    /// `datasets/kjv/baselines.json`.
    pub fn baselines(&self) -> PathBuf {
        self.kjv_dir().join("baselines.json")
    }

    /// `datasets/tokenizer`: the BPE tokenizer's folder.
    pub fn tokenizer_dir(&self) -> PathBuf {
        self.root.join("datasets/tokenizer")
    }

    /// `datasets/tokenizer/tokenizer.json`.
    pub fn tokenizer(&self) -> PathBuf {
        self.tokenizer_dir().join("tokenizer.json")
    }

    /// `datasets/tasks`: the multiple-choice task files.
    pub fn tasks(&self) -> PathBuf {
        self.root.join("datasets/tasks")
    }

    /// `datasets/arithmetic`: the arithmetic splits.
    pub fn arithmetic(&self) -> PathBuf {
        self.root.join("datasets/arithmetic")
    }

    /// `datasets/heldout/gpl-3.0.txt`: the held-out forgetting text.
    pub fn heldout(&self) -> PathBuf {
        self.root.join("datasets/heldout/gpl-3.0.txt")
    }

    /// `datasets/models/tiny-default`: the embedded default model.
    pub fn tiny_default(&self) -> PathBuf {
        self.root.join("datasets/models/tiny-default")
    }
}

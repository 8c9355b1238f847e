//! The allocator of strata's binaries: mimalloc, keeping freed memory for reuse.
//!
//! Every layer of a forward pass allocates and frees activation-sized buffers (megabytes
//! each). The system allocator hands such buffers back to the kernel and faults them in
//! again, zeroed, on the next layer; mimalloc keeps and reuses them. By default it still
//! returns ("purges") arena memory that stayed unused for a second, and the buffers of a
//! forward pass over a real model came back from the kernel in every layer: on a SmolLM2
//! forward pass of 4 x 256 tokens the process took about 69,000 page faults and the
//! kernel's `clear_page` held 12-14% of the profile. [`keep_freed_memory`] multiplies the
//! arena's purge delay by 100 (to 100 s), which brought the faults to about 9,500; memory
//! still goes back to the system once a run has stopped using it for that long. (The
//! binaries that share this file include it by path.)

/// mimalloc as the global allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(test)]
/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (`include/mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `mi_option_arena_purge_mult` in the same enum, which `libmimalloc-sys` does not name;
/// the test below checks both indices against mimalloc's documented defaults.
const MI_OPTION_ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = 24;

/// The arena purge delay is `purge_delay` (1000 ms) times this.
const ARENA_PURGE_MULT: std::ffi::c_long = 100;

/// Sets mimalloc's arena purge multiplier to [`ARENA_PURGE_MULT`]; call first in `main`.
pub fn keep_freed_memory() {
    // SAFETY: setting an option is thread-safe and valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_PURGE_MULT, ARENA_PURGE_MULT) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_indices_have_mimallocs_documented_defaults() {
        // src/options.c: purge_delay defaults to 1000 (no option near it does), and
        // arena_purge_mult, nine places later, to 1.
        // SAFETY: reading an option is thread-safe.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        assert_eq!(
            get(MI_OPTION_PURGE_DELAY),
            1000,
            "index 15 is not purge_delay"
        );
        assert_eq!(get(MI_OPTION_ARENA_PURGE_MULT), 1);
        keep_freed_memory();
        assert_eq!(get(MI_OPTION_ARENA_PURGE_MULT), ARENA_PURGE_MULT);
    }
}

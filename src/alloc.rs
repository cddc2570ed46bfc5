//! Process set-up shared by both binaries (`nhacviec` and `nhacviec-bench`): the allocator and
//! its options, so the benchmark measures memory as the daemon uses it. The only unsafe code
//! of the package lives here (the crate-wide lint denies it elsewhere).
#![allow(unsafe_code)]

/// mimalloc rather than glibc's malloc: rendering runs on every core, and glibc kept an arena
/// per thread and handed little of it back (a national morning round peaked at 142–151 MB;
/// mimalloc, tuned by [`return_freed_memory_promptly`], 104–115 MB and a tenth faster).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc v3's `mi_option_e`
/// (`include/mimalloc.h`); `tests::mimalloc_option_numbers_match_its_header` checks them
/// against their documented defaults, so a mimalloc upgrade that renumbers them fails a test.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Commits arena memory as it is used and returns freed pages to the system at once rather
/// than a second later: a daemon idles most of the day between rounds, and a round's peak
/// resident memory is what it is judged by. Run as a constructor, before the Rust runtime's
/// first allocation reserves mimalloc's first arena (set from `main`, the arena was already
/// committed eagerly: 126–142 MB instead of 104–115 MB). It allocates nothing itself.
extern "C" fn return_freed_memory_promptly() {
    for option in [MI_OPTION_ARENA_EAGER_COMMIT, MI_OPTION_PURGE_DELAY] {
        // SAFETY: sets a process-wide option of the allocator linked above while the process
        // has one thread (mimalloc's option setters are not thread-safe).
        unsafe { libmimalloc_sys::mi_option_set(option, 0) };
    }
}

#[used]
#[cfg_attr(target_os = "linux", link_section = ".init_array")]
static SET_ALLOCATOR_OPTIONS: extern "C" fn() = return_freed_memory_promptly;

#[cfg(test)]
mod tests {
    use super::*;

    fn option(number: libmimalloc_sys::mi_option_t) -> std::os::raw::c_long {
        // SAFETY: reads an allocator option.
        unsafe { libmimalloc_sys::mi_option_get(number) }
    }

    #[test]
    fn mimalloc_option_numbers_match_its_header() {
        // The constructor ran in this test binary too: both options are off…
        assert_eq!(option(MI_OPTION_ARENA_EAGER_COMMIT), 0);
        assert_eq!(option(MI_OPTION_PURGE_DELAY), 0);
        // …and their neighbours keep mimalloc v3's documented defaults, so the numbering is
        // the one the constants assume.
        assert_eq!(option(MI_OPTION_ARENA_EAGER_COMMIT - 1), 1, "deprecated_eager_commit");
        assert_eq!(option(MI_OPTION_ARENA_EAGER_COMMIT + 1), 1, "purge_decommits");
        assert_eq!(option(MI_OPTION_PURGE_DELAY - 1), 1, "deprecated_eager_commit_delay");
        assert_eq!(option(MI_OPTION_PURGE_DELAY + 3), 100, "os_tag");
        assert_eq!(option(MI_OPTION_PURGE_DELAY + 4), 32, "max_errors");
    }
}

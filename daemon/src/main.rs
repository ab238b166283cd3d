//! `matchmakerd`: the global allocator, then [`matchmakerd::run`] (the library has
//! everything else, so tests can run the daemon in-process).

/// The daemon allocates and frees many short-lived buffers per request (Redis replies,
/// request and response bodies, pages of 30 KB and more). Under the seats benchmark glibc's
/// malloc took about a quarter of the daemon's CPU, much of it in `malloc_consolidate`, which
/// runs whenever a block of 1 KB or more is allocated while small freed blocks are waiting.
/// mimalloc cut the daemon's CPU per join and per create by 15-25 %, for 10-20 MB more
/// resident memory (BENCHMARKS.md, "Optimisations").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    matchmakerd::run()
}

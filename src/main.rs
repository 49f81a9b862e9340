use clap::Parser;

/// mimalloc rather than the system allocator: hookd allocates and frees many small buffers
/// per message on several threads (requests, responses, rows), and glibc's malloc was about
/// a sixth of hookd's instructions, with waits on its arena locks; with mimalloc, hookd runs
/// 12 % fewer instructions per message (`bench/callgrind.sh`, docs/performance.md). Built
/// without transparent huge pages (`no_thp`): with them each thread's first heap segment
/// became a 2 MiB page, and idle RSS doubled, from 17 to 35 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = hookd::cli::Cli::parse();
    match hookd::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

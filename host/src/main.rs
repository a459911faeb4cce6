//! The `parade` binary; see [`parade_host::cli`].

fn main() -> std::process::ExitCode {
    parade_host::cli::main()
}

//! The slugbase binary: all the work is in the library.

fn main() -> std::process::ExitCode {
    slugbase::alloc::tune();
    slugbase::cli::main()
}

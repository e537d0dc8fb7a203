fn main() -> std::process::ExitCode {
    watos::cli::main()
}

//! `txtd`: serves the plain-text files of one directory as HTML pages,
//! from a master process and a fixed pool of pre-forked workers.
//!
//! `main` reads the flags and the configuration, then hands over to the
//! master; anything that stops txtd from starting is one `txtd: ...` line
//! on stderr and exit code 1.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use txtd::{config, master};

fn main() -> ExitCode {
    let cli = match config::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's report spans several lines; the first says what is wrong.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("txtd: {}", first.trim_start_matches("error: "));
            return ExitCode::FAILURE;
        }
    };
    if cli.print_man || cli.print_completions.is_some() {
        return print_docs(&cli);
    }
    let config = match config::Config::resolve(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("txtd: {e}");
            return ExitCode::FAILURE;
        }
    };
    match master::run(config) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("txtd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--print-man` and `--print-completions SHELL`: what `contrib/` ships
/// (`contrib/txtd.1`, `contrib/completions/`), made from the flags
/// themselves so it cannot go stale (a test compares the two).
fn print_docs(cli: &config::Cli) -> ExitCode {
    let mut command = config::Cli::command();
    let mut out = std::io::stdout().lock();
    let written = match cli.print_completions {
        Some(shell) => {
            clap_complete::generate(shell, &mut command, "txtd", &mut out);
            Ok(())
        }
        None => clap_mangen::Man::new(command).render(&mut out),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("txtd: {e}");
            ExitCode::FAILURE
        }
    }
}

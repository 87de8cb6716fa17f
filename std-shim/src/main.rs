//! `txtd`: serves the plain-text files of one directory as HTML pages,
//! from a master process and a fixed pool of pre-forked workers.
//!
//! `main` reads the flags and the configuration, then hands over to the
//! master; anything that stops txtd from starting is one `txtd: ...` line
//! on stderr and exit code 1.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
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

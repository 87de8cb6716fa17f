//! Logging macros that forward to defmt or log, whichever feature is on.
//!
//! Only `trace!` and `debug!` exist: core reports what it decided and why,
//! and leaves warnings and errors to the caller, which sees the returned
//! error values.
//!
//! With neither feature the macros only borrow their arguments, so a build
//! without logging has no formatting code and no unused-variable warnings.
//! Format strings use only `{}` and `{:?}`, which both back-ends accept.

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("the `defmt` and `log` features of txtd-core are exclusive: enable one");

macro_rules! trace {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")] defmt::trace!($fmt $(, $arg)*);
        #[cfg(feature = "log")] log::trace!($fmt $(, $arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))] { $(let _ = &$arg;)* }
    }};
}

macro_rules! debug {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")] defmt::debug!($fmt $(, $arg)*);
        #[cfg(feature = "log")] log::debug!($fmt $(, $arg)*);
        #[cfg(not(any(feature = "defmt", feature = "log")))] { $(let _ = &$arg;)* }
    }};
}

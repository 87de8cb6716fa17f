//! Logging macros that forward to defmt or log, whichever feature is on.
//!
//! The same shim as txtd-core's: only `trace!` and `debug!`, format strings
//! with `{}` and `{:?}` only, and with neither feature the macros only
//! borrow their arguments.

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("the `defmt` and `log` features of txtd-smoltcp are exclusive: enable one");

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

//! Privilege drop: `--user`/`--group` name the account the workers serve
//! as. The master stays root (it binds, opens the logs and forks); each
//! worker drops to the account right after the fork, before it opens the
//! site or touches a request, or exits with `worker::EXIT_CANNOT_SERVE`
//! (which stops txtd): a worker never serves as root by accident.

use crate::sys::{self, Id};

/// The account workers run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: Id,
    /// Group id (the only group: supplementary groups are dropped).
    pub gid: Id,
}

/// The account for `--user` and `--group`: the user's primary group when
/// only the user is given; root's uid when only the group is. `None` when
/// neither is given.
///
/// # Errors
///
/// One line: not started as root, or an unknown user or group.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Account>, String> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let euid = sys::geteuid();
    if euid != 0 {
        return Err(format!(
            "--user and --group need txtd to start as root (euid is {euid})"
        ));
    }
    let (uid, primary) = match user {
        Some(name) => sys::user_by_name(name)
            .map_err(|e| format!("user {name}: {e}"))?
            .ok_or_else(|| format!("user {name}: no such user"))?,
        None => (0, 0),
    };
    let gid = match group {
        Some(name) => sys::group_by_name(name)
            .map_err(|e| format!("group {name}: {e}"))?
            .ok_or_else(|| format!("group {name}: no such group"))?,
        None => primary,
    };
    Ok(Some(Account { uid, gid }))
}

/// In a new worker: becomes `account` for good.
///
/// # Errors
///
/// The call that failed; the worker must exit.
pub fn drop_to(account: Account) -> std::io::Result<()> {
    sys::drop_privileges(account.uid, account.gid)
}

//! Who is acting, for the audit entries of force-deletes: `--operator`, else
//! `console.operator`, else the login (`USER`, `LOGNAME`, `USERNAME`), else the name of the
//! effective user in the OS user database. `unknown` only when none of these names anyone.

/// The operator name: the first non-blank of `flag` (`--operator`), `configured`
/// (`console.operator`) and the [`login_name`].
pub fn resolve(flag: Option<&str>, configured: Option<&str>) -> String {
    [flag, configured]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|name| !name.is_empty())
        .map(str::to_string)
        .unwrap_or_else(login_name)
}

/// The login: `USER`, `LOGNAME`, `USERNAME`, then the OS user database; `unknown` if
/// nothing names the user.
pub fn login_name() -> String {
    login_from(|name| std::env::var(name).ok()).unwrap_or_else(|| "unknown".to_string())
}

fn login_from(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| env(name).filter(|v| !v.trim().is_empty()))
        .or_else(os_user_name)
}

#[cfg(unix)]
fn os_user_name() -> Option<String> {
    use nix::unistd::{Uid, User};
    User::from_uid(Uid::effective())
        .ok()
        .flatten()
        .map(|user| user.name)
        .filter(|name| !name.is_empty())
}

#[cfg(not(unix))]
fn os_user_name() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_setting() {
        assert_eq!(resolve(Some("alice"), Some("bob")), "alice");
        assert_eq!(resolve(None, Some("bob")), "bob");
        assert_eq!(resolve(Some("  "), Some("bob")), "bob");
    }

    #[test]
    fn environment_variables_in_order() {
        let env = |name: &str| match name {
            "LOGNAME" => Some("carol".to_string()),
            "USERNAME" => Some("dave".to_string()),
            _ => None,
        };
        assert_eq!(login_from(env).as_deref(), Some("carol"));
    }

    #[cfg(unix)]
    #[test]
    fn without_environment_the_os_user_database_names_the_user() {
        let name = login_from(|_| None).expect("the effective user has a passwd entry");
        assert!(!name.is_empty() && name != "unknown", "{name}");
    }
}

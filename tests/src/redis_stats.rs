//! Redis's own command statistics (`INFO commandstats`, which counts the commands scripts
//! call too), for tests that assert how much work requests cost Redis: reset them, run the
//! requests, count the calls.

/// Zeroes the statistics (`CONFIG RESETSTAT`).
pub async fn reset(conn: &mut impl redis::aio::ConnectionLike) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .expect("CONFIG RESETSTAT");
}

/// Calls of `command` (lower case, e.g. `hmget`) since the statistics were last reset.
pub async fn calls(conn: &mut impl redis::aio::ConnectionLike, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Script calls (`EVALSHA` and `EVAL`) since the statistics were last reset.
pub async fn script_calls(conn: &mut impl redis::aio::ConnectionLike) -> u64 {
    calls(conn, "evalsha").await + calls(conn, "eval").await
}

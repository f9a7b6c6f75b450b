//! The operator's allocator (jemalloc, installed in main.rs) and the configuration built into
//! it from `.cargo/config.toml`.

/// The options jemalloc was built with (`config.malloc_conf`), logged at startup so a build
/// that lost them shows it; `None` when jemalloc can't be asked.
pub fn built_in_configuration() -> Option<&'static str> {
    // The ctl crate hands back the C string with its terminating NUL.
    let conf = tikv_jemalloc_ctl::config::malloc_conf::read().ok()?;
    Some(conf.trim_end_matches('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Freed pages go back to the kernel at once; with jemalloc's default decay an idle
    /// operator kept them resident (see `.cargo/config.toml`).
    #[test]
    fn jemalloc_returns_freed_pages_at_once() {
        let conf = built_in_configuration().expect("jemalloc's built-in configuration");
        let options: Vec<&str> = conf.split(',').collect();
        assert!(options.contains(&"dirty_decay_ms:0"), "{conf}");
        assert!(options.contains(&"muzzy_decay_ms:0"), "{conf}");
    }
}

//! Where wgtrain keeps what it can rebuild (tokenized data, downloads, kernel choices), and the
//! stable hash its cache keys use.

use std::path::PathBuf;

/// `$WGTRAIN_CACHE`, else `$XDG_CACHE_HOME/wgtrain`, else `~/.cache/wgtrain` (the temporary
/// directory when there is no home).
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("WGTRAIN_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("wgtrain");
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("wgtrain")
}

pub const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// FNV-1a, 64 bits: a stable hash for cache keys.
pub fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01B3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a64(FNV_OFFSET, b""), FNV_OFFSET);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xAF63_DC4C_8601_EC8C);
    }
}

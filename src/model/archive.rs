//! A minimal writer of POSIX ustar archives: how the browser demo hands over a checkpoint
//! directory as one download (`tar xf` unpacks it anywhere).

use crate::error::{Error, Result};

const BLOCK: usize = 512;
/// The largest file an 11-digit octal size field can describe (8 GiB - 1).
const MAX_FILE: u64 = 0o77777777777;

/// Write `value` as zero-padded octal in `field`, leaving its last byte NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

fn header(path: &str, size: u64, directory: bool, mtime: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..path.len()].copy_from_slice(path.as_bytes());
    octal(&mut h[100..108], if directory { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.min(MAX_FILE));
    h[156] = if directory { b'5' } else { b'0' };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as spaces.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    octal(&mut h[148..155], sum as u64);
    h[155] = b' ';
    h
}

/// A tar archive of one directory `dir` holding `files` (`(name, bytes)`, plain names),
/// every entry dated `mtime` (seconds since the epoch; the caller's clock, as wasm32 has none).
pub fn tar(dir: &str, files: &[(&str, &[u8])], mtime: u64) -> Result<Vec<u8>> {
    let plain = |name: &str| {
        !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && name.is_ascii()
            && !name.contains('\0')
    };
    if !plain(dir) {
        return Err(Error::Invalid(format!(
            "'{dir}' is not a plain directory name for an archive"
        )));
    }
    let total: usize = files.iter().map(|(_, b)| b.len().div_ceil(BLOCK) + 1).sum();
    let mut out = Vec::with_capacity((total + 3) * BLOCK);
    out.extend_from_slice(&header(&format!("{dir}/"), 0, true, mtime));
    for (name, bytes) in files {
        let path = format!("{dir}/{name}");
        if !plain(name) || path.len() >= 100 {
            return Err(Error::Invalid(format!(
                "'{name}' cannot be stored in the archive: names must be plain ASCII file names \
                 under 100 bytes with the directory"
            )));
        }
        if bytes.len() as u64 > MAX_FILE {
            return Err(Error::TooLarge {
                detail: format!(
                    "{name} is {} bytes; a tar entry holds at most 8 GiB",
                    bytes.len()
                ),
            });
        }
        out.extend_from_slice(&header(&path, bytes.len() as u64, false, mtime));
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    // Two zero blocks end the archive.
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_checksum() {
        let t = tar("ckpt", &[("a.json", b"{}"), ("empty", b"")], 0o1234).unwrap();
        // dir header, a.json header + 1 data block, empty header, 2 end blocks
        assert_eq!(t.len(), 6 * BLOCK);
        assert_eq!(&t[..5], b"ckpt/");
        let h = &t[BLOCK..2 * BLOCK];
        assert_eq!(&h[..11], b"ckpt/a.json");
        assert_eq!(&h[124..135], b"00000000002");
        assert_eq!(&h[136..147], b"00000001234");
        assert_eq!(&t[2 * BLOCK..2 * BLOCK + 2], b"{}");
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut blank = h.to_vec();
        blank[148..156].fill(b' ');
        assert_eq!(stored, blank.iter().map(|&b| b as u32).sum::<u32>());
        assert!(t[4 * BLOCK..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_paths() {
        assert!(tar("a/b", &[], 0).is_err());
        assert!(tar("..", &[], 0).is_err());
        assert!(tar("d", &[("../x", b"")], 0).is_err());
        assert!(tar("d", &[(&"x".repeat(120), b"")], 0).is_err());
    }
}

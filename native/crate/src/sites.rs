//! Spawn sites as the agent's site handles, for both ways Tokio's tasks come
//! in (the tracing layer and the runtime hooks).
//!
//! Tokio spawns at a few places over and over. Each thread keeps the handles
//! the agent gave it, by the site's address: formatting "file:line" and
//! interning it happen once per place and thread, not once per task.

// Shared by the layer and the hooks; with only one of them built, some of
// this goes unused.
#![cfg_attr(not(all(feature = "tracing", feature = "tokio", tokio_unstable)), allow(dead_code))]

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::fmt::{self, Write};

extern "C" {
    fn leakscope_crate_task_site(kind: *const c_char, site: *const c_char) -> u32;
}

/// A NUL-terminated string on the stack: text reaches the agent (which
/// copies it) without a heap allocation per spawn. Longer text is cut.
pub(crate) struct CBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> CBuf<N> {
    pub(crate) const fn new() -> Self {
        CBuf { bytes: [0; N], len: 0 }
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    pub(crate) fn as_ptr(&mut self) -> *const c_char {
        self.bytes[self.len] = 0;
        self.bytes.as_ptr().cast()
    }
}

impl<const N: usize> fmt::Write for CBuf<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.len + 1 >= N {
                break;
            }
            if byte != 0 {
                self.bytes[self.len] = byte;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Which site a spawn is at: the file's address and length, line, kind.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SiteKey {
    file: (usize, usize),
    line: u64,
    kind: usize,
}

const SITE_SLOTS: usize = 64;

impl SiteKey {
    fn slot(&self) -> usize {
        let mixed = (self.file.0 as u64 ^ self.line.rotate_left(32) ^ self.kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 58) as usize % SITE_SLOTS
    }
}

thread_local! {
    /// The site handles this thread was given, by site; a direct-mapped cache.
    static SITES: [Cell<(SiteKey, u32)>; SITE_SLOTS] = const {
        [const { Cell::new((SiteKey { file: (0, 0), line: 0, kind: 0 }, 0)) }; SITE_SLOTS]
    };
}

/// The agent's handle of the site `file:line` (no file: an unknown site)
/// for tasks of `kind`; 0 when the agent has none to give.
///
/// The cache keys on the file's address, so `file` must be a string that
/// is not freed and reused while the program runs: Tokio's are
/// `Location::file()`, static.
pub(crate) fn handle(kind: &'static CStr, file: Option<&str>, line: u64) -> u32 {
    let file_key = file.map_or((0, 0), |file| (file.as_ptr() as usize, file.len()));
    let key = SiteKey { file: file_key, line, kind: kind.as_ptr() as usize };
    SITES.with(|sites| {
        let slot = &sites[key.slot()];
        let (held, handle) = slot.get();
        if held == key && handle != 0 {
            return handle;
        }
        let mut site = CBuf::<512>::new();
        if let Some(file) = file {
            let _ = site.write_str(file);
            let _ = write!(site, ":{line}");
        }
        let handle = unsafe { leakscope_crate_task_site(kind.as_ptr(), site.as_ptr()) };
        if handle != 0 {
            slot.set((key, handle));
        }
        handle
    })
}

//! Containing panics of third-party readers. A malformed file must end in an error, but some
//! dependencies (e.g. `tokenizers` on a corrupt tokenizer.json) panic on input they do not
//! expect. [`contain`] runs such a call, turns a panic into [`Error::Invalid`] with the panic's
//! message, and keeps the panic quiet (no "thread panicked" on the user's terminal): a panic
//! hook, installed once and chaining to the previous one, stays silent for guarded calls only.

use crate::error::{Error, Result};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                MESSAGE.with(|m| *m.borrow_mut() = info.to_string());
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`; a panic inside it becomes `Err(Error::Invalid("{what}: ..."))`.
pub fn contain<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    out.unwrap_or_else(|_| {
        let msg = MESSAGE.with(|m| std::mem::take(&mut *m.borrow_mut()));
        let msg = msg
            .split_once(":\n")
            .map_or(msg.as_str(), |(_, m)| m)
            .trim()
            .to_string();
        Err(Error::Invalid(format!(
            "{what}: the file is malformed (its reader gave up: {msg})"
        )))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error_and_values_pass_through() {
        let e = super::contain::<()>("thing.json", || panic!("bad field")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("thing.json: the file is malformed") && m.contains("bad field"),
            "{m}"
        );
        assert_eq!(super::contain("x", || Ok(3)).unwrap(), 3);
    }
}

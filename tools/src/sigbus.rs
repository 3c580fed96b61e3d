//! A clear exit when the model file is truncated or rewritten in place during a run.
//!
//! The model's weights are read from a memory map (`octet::format::ModelFile::open`). If
//! another process truncates the file (`cp new.octet model.octet` truncates first), the next
//! read of a page past the new end raises SIGBUS, which would kill octet with exit 135 and no
//! word. [`guard_model`] installs a SIGBUS handler that, for a fault inside the model's mapped
//! bytes, writes a preformatted message naming the file and exits with the bad-input code (65),
//! as sqlite and LMDB users expect of a file changed under a running reader. A fault anywhere
//! else is not ours: the default action is restored and the fault repeats, so it dies as before.
//!
//! The handler is async-signal-safe: it reads atomics, calls `write(2)` and `_exit(2)` only.

use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static MESSAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static MESSAGE_LEN: AtomicUsize = AtomicUsize::new(0);
static START: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);

/// Exit code on a fault in the model's map: bad input.
const EXIT_CODE: i32 = octet_tools::exit::BAD_INPUT as i32;

/// Turns a SIGBUS inside `file`'s tensors (mapped from `path`) into a message and exit 65.
pub fn guard_model(path: &Path, file: &octet::format::ModelFile) {
    let (mut start, mut end) = (usize::MAX, 0usize);
    for t in file.tensors() {
        let p = t.bytes.as_ptr() as usize;
        start = start.min(p);
        end = end.max(p + t.bytes.len());
    }
    if start >= end {
        return;
    }
    let message = format!(
        "error: the model file {} changed while octet was reading it (it was truncated or rewritten in place); \
         replace a model by writing a new file and renaming it over the old one (mv), never by copying over it, \
         and run again\n",
        path.display()
    );
    let message: &'static mut [u8] = Box::leak(message.into_bytes().into_boxed_slice());
    MESSAGE_LEN.store(message.len(), Ordering::SeqCst);
    MESSAGE.store(message.as_mut_ptr(), Ordering::SeqCst);
    // The map lives as long as the model; pages are rounded out to whole pages.
    START.store(start & !4095, Ordering::SeqCst);
    END.store(end.next_multiple_of(4096), Ordering::SeqCst);
    install();
}

#[cfg(unix)]
fn install() {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler has the
    // three-argument form SA_SIGINFO requires and is async-signal-safe (see the module docs).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
fn install() {}

#[cfg(unix)]
extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a handler installed with SA_SIGINFO, and
    // si_addr is defined for SIGBUS. The message is a leaked, never-freed buffer of MESSAGE_LEN
    // bytes; write(2), _exit(2) and signal(2) are async-signal-safe.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let message = MESSAGE.load(Ordering::SeqCst);
        if !message.is_null() && addr >= START.load(Ordering::SeqCst) && addr < END.load(Ordering::SeqCst) {
            libc::write(2, message as *const libc::c_void, MESSAGE_LEN.load(Ordering::SeqCst));
            libc::_exit(EXIT_CODE);
        }
        // Not the model: restore the default action; returning repeats the fault, which kills.
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}

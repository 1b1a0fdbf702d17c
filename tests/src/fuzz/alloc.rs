//! The fuzz binaries' global allocator: the system allocator, counting
//! per thread what the input being run allocates.
//!
//! A parser that trusts a length field allocates what the bytes ask for.
//! While an input runs ([`arm`]), each thread records its largest single
//! allocation and its peak of live bytes; the driver reads them after the
//! input ([`disarm`]) and reports the input if they pass its limits. An
//! allocation of [`HARD_LIMIT`] or more is not attempted at all: the
//! target and input are written to stderr from here (no allocation) and
//! the allocator answers null, which aborts the process — the report is
//! already out, and the machine is not pushed into swap.
//!
//! The only `unsafe` in the workspace's own code: a `GlobalAlloc` cannot
//! be written without it (ADR 0033). It forwards to `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// An allocation this large is refused (null, hence abort) after the
/// input is reported.
pub const HARD_LIMIT: usize = 1 << 30;

/// What one input allocated on its thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The largest single allocation (bytes).
    pub largest: usize,
    /// The most bytes live at once, above what was live at [`arm`].
    pub peak: usize,
}

thread_local! {
    // Const-initialized and without Drop: reading them never allocates,
    // so the allocator itself may.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static BASE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// The input being run, for the report written before an abort.
    static INPUT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
    static TARGET: Cell<&'static str> = const { Cell::new("") };
}

/// Starts counting for `input` of `target` on this thread. `input` must
/// stay alive until [`disarm`].
pub fn arm(target: &'static str, input: &[u8]) {
    let _ = INPUT.try_with(|c| c.set((input.as_ptr(), input.len())));
    let _ = TARGET.try_with(|c| c.set(target));
    let live = LIVE.try_with(Cell::get).unwrap_or(0);
    let _ = BASE.try_with(|c| c.set(live));
    let _ = PEAK.try_with(|c| c.set(live));
    let _ = LARGEST.try_with(|c| c.set(0));
    let _ = ARMED.try_with(|c| c.set(true));
}

/// Stops counting; what the input allocated.
pub fn disarm() -> Usage {
    let _ = ARMED.try_with(|c| c.set(false));
    let _ = INPUT.try_with(|c| c.set((std::ptr::null(), 0)));
    let base = BASE.try_with(Cell::get).unwrap_or(0);
    let peak = PEAK.try_with(Cell::get).unwrap_or(0);
    Usage {
        largest: LARGEST.try_with(Cell::get).unwrap_or(0),
        peak: usize::try_from(peak.saturating_sub(base)).unwrap_or(0),
    }
}

/// Counts an allocation of `size`; false if it must be refused.
fn allocating(size: usize) -> bool {
    let live = LIVE
        .try_with(|c| {
            let v = c
                .get()
                .saturating_add(isize::try_from(size).unwrap_or(isize::MAX));
            c.set(v);
            v
        })
        .unwrap_or(0);
    if !ARMED.try_with(Cell::get).unwrap_or(false) {
        return true;
    }
    let _ = PEAK.try_with(|c| c.set(c.get().max(live)));
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    if size < HARD_LIMIT {
        return true;
    }
    // Disarmed first: nothing below may count or report again.
    let _ = ARMED.try_with(|c| c.set(false));
    report_abort(size);
    false
}

fn freed(size: usize) {
    let _ = LIVE.try_with(|c| c.set(c.get().saturating_sub(isize::try_from(size).unwrap_or(0))));
}

/// Writes "target, size, input as hex" to fd 2 with a stack buffer.
fn report_abort(size: usize) {
    let mut err = std::io::stderr().lock();
    let target = TARGET.try_with(Cell::get).unwrap_or("?");
    let _ = writeln!(
        err,
        "\nfuzz: target {target}: allocation of {size} bytes (limit {HARD_LIMIT}); aborting"
    );
    let (ptr, len) = INPUT.try_with(Cell::get).unwrap_or((std::ptr::null(), 0));
    if ptr.is_null() {
        return;
    }
    // SAFETY: `arm`'s caller keeps the input alive until `disarm`, and
    // the pointer is cleared there; this runs between the two.
    let input = unsafe { std::slice::from_raw_parts(ptr, len) };
    let _ = write!(err, "fuzz: input ({len} bytes, hex): ");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 256];
    for chunk in input.chunks(buf.len() / 2) {
        for (i, b) in chunk.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        let _ = err.write_all(&buf[..2 * chunk.len()]);
    }
    let _ = writeln!(err);
}

/// The counting allocator; install it with `#[global_allocator]` in a
/// fuzz binary only.
pub struct Counting;

// SAFETY: every call forwards to `System` with the caller's layout and
// pointer, unchanged; refusing (null) is allowed by the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !allocating(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !allocating(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        freed(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !allocating(new_size) {
            return std::ptr::null_mut();
        }
        freed(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

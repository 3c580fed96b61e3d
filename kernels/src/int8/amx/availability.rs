//! Whether this process may run AMX tile instructions, decided once.
//!
//! Three things must hold before the first tile instruction:
//! 1. the CPU reports AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and 25; stable Rust has
//!    no `is_x86_feature_detected!("amx-tile")` yet, so CPUID is read directly);
//! 2. the operating system manages the tile state (XCR0 bits 17 XTILECFG and 18 XTILEDATA);
//! 3. Linux granted this process the tile data state: `arch_prctl(ARCH_REQ_XCOMP_PERM,
//!    XFEATURE_XTILEDATA)` returned 0. Without it the first tile instruction kills the
//!    process with SIGILL. The request goes through libc's `syscall()`, so an `LD_PRELOAD`
//!    shim that refuses it (`noamx.c` in the shared tools) exercises the fallback.
//!
//! The permission is per process, so once granted every thread (every rayon worker) may use
//! tiles. Other operating systems are not wired up: there AMX is reported unavailable.

use std::fmt;
use std::sync::OnceLock;

/// Why the AMX kernel is not available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmxUnavailable {
    /// CPUID lacks AMX-TILE or AMX-INT8.
    CpuLacksAmx,
    /// The OS does not enable the tile state in XCR0.
    OsLacksTileState,
    /// The permission request failed, with this error.
    PermissionRefused(String),
    /// The permission request is only implemented for Linux.
    UnsupportedOs,
}

impl fmt::Display for AmxUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmxUnavailable::CpuLacksAmx => write!(f, "this CPU has no AMX-TILE / AMX-INT8"),
            AmxUnavailable::OsLacksTileState => {
                write!(f, "the operating system does not enable the AMX tile state (XCR0)")
            }
            AmxUnavailable::PermissionRefused(err) => {
                write!(f, "the kernel refused tile data permission (arch_prctl: {err})")
            }
            AmxUnavailable::UnsupportedOs => {
                write!(f, "the tile permission request is only implemented on Linux")
            }
        }
    }
}

/// What CPUID and XCR0 say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuAmx {
    /// AMX-TILE and AMX-INT8.
    pub has_amx_int8: bool,
    /// XCR0 bits 17 and 18.
    pub os_tile_state: bool,
}

/// The decision, given the CPU's answer and a way to ask for the permission (pure, so that
/// tests can simulate a refusal).
pub(crate) fn decide(
    cpu: CpuAmx,
    request_permission: impl FnOnce() -> Result<(), AmxUnavailable>,
) -> Result<(), AmxUnavailable> {
    if !cpu.has_amx_int8 {
        return Err(AmxUnavailable::CpuLacksAmx);
    }
    if !cpu.os_tile_state {
        return Err(AmxUnavailable::OsLacksTileState);
    }
    request_permission()
}

/// The process-wide answer, computed (and the permission requested) on first call.
pub fn availability() -> &'static Result<(), AmxUnavailable> {
    static STATE: OnceLock<Result<(), AmxUnavailable>> = OnceLock::new();
    STATE.get_or_init(|| decide(cpu_amx(), request_tile_permission))
}

/// Whether the CPU has AMX-BF16 (`tdpbf16ps`; CPUID leaf 7, EDX bit 22). Only meaningful
/// together with [`availability`], which covers the tile state and the permission.
pub fn cpu_has_amx_bf16() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86_64 CPU; leaf 7 is read only when supported.
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid(0).eax >= 7 && __cpuid_count(7, 0).edx & (1 << 22) != 0
    }
}

/// Reads CPUID leaf 7 and, when the OS uses XSAVE, XCR0.
fn cpu_amx() -> CpuAmx {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86_64 CPU; leaf 0 gives the highest leaf. (The CPUID
    // intrinsics became safe functions in recent Rust; the blocks keep older ones building.)
    #[allow(unused_unsafe)]
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return CpuAmx {
            has_amx_int8: false,
            os_tile_state: false,
        };
    }
    // SAFETY: leaf 7 is within the supported range (checked above).
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { __cpuid_count(7, 0) };
    let has_amx_int8 = leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 25) != 0;
    // SAFETY: leaf 1 always exists.
    #[allow(unused_unsafe)]
    let osxsave = unsafe { __cpuid(1) }.ecx & (1 << 27) != 0;
    let os_tile_state = osxsave
        && {
            let (lo, _hi): (u32, u32);
            // SAFETY: XGETBV with ECX = 0 is allowed whenever CPUID.1:ECX.OSXSAVE is set (checked);
            // it only writes EAX and EDX.
            unsafe {
                std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nomem, nostack, preserves_flags));
            }
            let tile_bits = (1u32 << 17) | (1 << 18);
            lo & tile_bits == tile_bits
        };
    CpuAmx {
        has_amx_int8,
        os_tile_state,
    }
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` through libc's `syscall()`.
#[cfg(target_os = "linux")]
fn request_tile_permission() -> Result<(), AmxUnavailable> {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's permitted XSAVE
    // features; it reads and writes no user memory.
    let ret = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) };
    if ret == 0 {
        Ok(())
    } else {
        Err(AmxUnavailable::PermissionRefused(errno_name(
            std::io::Error::last_os_error(),
        )))
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> Result<(), AmxUnavailable> {
    Err(AmxUnavailable::UnsupportedOs)
}

/// `EPERM`-style short names for the errors arch_prctl gives, else the OS message.
#[cfg(target_os = "linux")]
fn errno_name(err: std::io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP".into(),
        Some(libc::ENOSYS) => "ENOSYS".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMX_CPU: CpuAmx = CpuAmx {
        has_amx_int8: true,
        os_tile_state: true,
    };

    #[test]
    fn refusals_and_missing_features_say_why() {
        let refused = decide(AMX_CPU, || Err(AmxUnavailable::PermissionRefused("EPERM".into())));
        let text = refused.unwrap_err().to_string();
        assert!(
            text.contains("refused tile data permission") && text.contains("EPERM"),
            "{text}"
        );
        let no_cpu = CpuAmx {
            has_amx_int8: false,
            os_tile_state: true,
        };
        assert_eq!(
            decide(no_cpu, || panic!("must not ask")),
            Err(AmxUnavailable::CpuLacksAmx)
        );
        let no_os = CpuAmx {
            has_amx_int8: true,
            os_tile_state: false,
        };
        assert_eq!(
            decide(no_os, || panic!("must not ask")),
            Err(AmxUnavailable::OsLacksTileState)
        );
        assert_eq!(decide(AMX_CPU, || Ok(())), Ok(()));
    }

    /// The real request through libc's `syscall()`: on a CPU without AMX Linux refuses it
    /// (harmlessly), and under the `noamx.c` shim it fails with EPERM, which the error names.
    #[cfg(target_os = "linux")]
    #[test]
    fn permission_request_reports_the_errno() {
        let shimmed = std::env::var_os("OCTET_TEST_AMX_REFUSED").is_some();
        if shimmed || !cpu_amx().has_amx_int8 {
            let err = request_tile_permission().unwrap_err();
            assert!(matches!(err, AmxUnavailable::PermissionRefused(_)), "{err:?}");
            if shimmed {
                assert_eq!(err, AmxUnavailable::PermissionRefused("EPERM".into()));
            }
        }
    }

    /// Under the `noamx.c` shim (`LD_PRELOAD=.../noamx.so OCTET_TEST_AMX_REFUSED=1 cargo test
    /// -p octet-kernels amx_refused`) on an AMX machine the real request must fail and dispatch
    /// must say why; elsewhere this only checks that the answer is stable.
    #[test]
    fn amx_refused_under_shim() {
        let first = availability().clone();
        assert_eq!(&first, availability());
        if std::env::var_os("OCTET_TEST_AMX_REFUSED").is_some() && cpu_amx().has_amx_int8 {
            assert!(matches!(first, Err(AmxUnavailable::PermissionRefused(_))), "{first:?}");
            assert!(!crate::Isa::Amx.is_supported());
            let text = crate::describe();
            assert!(text.contains("refused tile data permission"), "{text}");
        }
    }
}

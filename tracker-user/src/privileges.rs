//! `[privileges]`: once everything that needs root is done (sockets bound,
//! XDP attached, AF_XDP sockets open, TLS and access-list files read), the
//! tracker chroots, switches group and user, and keeps no capabilities.
//!
//! Names are looked up at start, before anything is bound, so a user that
//! does not exist fails start-up at once with the key to blame, and before
//! the chroot hides /etc/passwd.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::config::PrivilegesConfig;

/// What to switch to, resolved from the config.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    user: Option<(String, libc::uid_t)>,
    group: Option<(String, libc::gid_t)>,
    chroot: Option<PathBuf>,
}

/// What was switched, for the reload hints: a SIGUSR1 reload that cannot
/// read a file should say why that may be.
#[derive(Clone, Debug, Default)]
pub struct Dropped {
    user: Option<String>,
    chroot: Option<PathBuf>,
}

impl Plan {
    /// Looks the names up. Errors name the key at fault.
    pub fn resolve(config: &PrivilegesConfig) -> anyhow::Result<Plan> {
        let mut plan = Plan::default();
        let mut primary_gid = None;
        if !config.user.is_empty() {
            let (uid, gid) = lookup_user(&config.user)
                .with_context(|| format!("privileges.user = {:?}", config.user))?;
            plan.user = Some((config.user.clone(), uid));
            primary_gid = Some((format!("{}'s primary group", config.user), gid));
        }
        plan.group = if config.group.is_empty() {
            primary_gid
        } else {
            let gid = lookup_group(&config.group)
                .with_context(|| format!("privileges.group = {:?}", config.group))?;
            Some((config.group.clone(), gid))
        };
        if !config.chroot.as_os_str().is_empty() {
            let dir = &config.chroot;
            if !dir.is_dir() {
                bail!(
                    "privileges.chroot = {:?}: not a directory",
                    dir.display().to_string()
                );
            }
            plan.chroot = Some(dir.clone());
        }
        Ok(plan)
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.group.is_none() && self.chroot.is_none()
    }

    /// Chroots, switches group and user, and clears every capability set.
    /// Called on the main thread before any worker thread is started; glibc
    /// applies set*id to every thread anyway, and the workers inherit the
    /// rest (no_new_privs, empty capability sets) from this thread.
    pub fn apply(&self) -> anyhow::Result<Dropped> {
        if self.is_empty() {
            return Ok(Dropped::default());
        }
        if let Some(dir) = &self.chroot {
            let path = CString::new(dir.as_os_str().as_bytes())
                .context("privileges.chroot: the path holds a NUL byte")?;
            // SAFETY: `path` is a NUL-terminated string alive for the call.
            check(unsafe { libc::chroot(path.as_ptr()) })
                .with_context(|| format!("privileges.chroot: chroot to {}", dir.display()))?;
            // Otherwise the working directory stays outside the chroot.
            std::env::set_current_dir("/").context("privileges.chroot: chdir to / after chroot")?;
            if self.user.is_none() {
                log::warn!(
                    "privileges.chroot without privileges.user: root can leave a chroot; \
                     set a user too"
                );
            }
        }
        // A service manager may already have started us as the configured
        // user (systemd's User=): nothing to switch then, and an
        // unprivileged setgroups would fail.
        // SAFETY: get*id cannot fail and take no arguments.
        let (euid, gid_now) = unsafe { (libc::geteuid(), libc::getgid()) };
        let already = |gid: libc::gid_t| euid != 0 && gid == gid_now;
        if let Some((name, gid)) = self.group.as_ref().filter(|(_, gid)| !already(*gid)) {
            let groups = [*gid];
            // Supplementary groups first: root's would otherwise outlive
            // the switch. glibc applies both calls to every thread.
            // SAFETY: `groups` is a live array of one gid_t.
            check(unsafe { libc::setgroups(1, groups.as_ptr()) })
                .with_context(|| format!("privileges: setgroups to {name} ({gid})"))?;
            // SAFETY: plain syscall wrapper, no memory passed.
            check(unsafe { libc::setresgid(*gid, *gid, *gid) })
                .with_context(|| format!("privileges.group: switching to {name} ({gid})"))?;
        }
        if let Some((name, uid)) = self
            .user
            .as_ref()
            .filter(|(_, uid)| *uid != euid || euid == 0)
        {
            // While still root: no later exec, even of a file with
            // capabilities, can bring any back.
            drop_bounding_set();
            // SAFETY: plain syscall wrapper, no memory passed.
            check(unsafe { libc::setresuid(*uid, *uid, *uid) })
                .with_context(|| format!("privileges.user: switching to {name} ({uid})"))?;
        }
        if self.user.is_some() {
            // Leaving uid 0 clears the permitted, effective and ambient
            // sets, unless a parent set SECBIT_KEEP_CAPS or
            // SECBIT_NO_SETUID_FIXUP; and a tracker started as the user may
            // have been handed some (systemd's AmbientCapabilities=). Clear
            // them explicitly either way.
            clear_capabilities().context("privileges: clearing capabilities")?;
        }
        // No exec'd helper (iproute2 at start only, but still) may regain
        // privileges through a setuid binary or file capabilities.
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
            .context("privileges: setting no_new_privs")?;
        let dropped = Dropped {
            user: self.user.as_ref().map(|(name, _)| name.clone()),
            chroot: self.chroot.clone(),
        };
        log::info!("privileges dropped: {}", dropped.describe());
        Ok(dropped)
    }
}

impl Dropped {
    /// Whether the tracker switched user or chrooted, and so can no
    /// longer do what needed root (removing its bpffs pins, say).
    pub fn gave_up_root(&self) -> bool {
        self.user.is_some() || self.chroot.is_some()
    }

    fn describe(&self) -> String {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut text = format!("uid {uid}, gid {gid}");
        if let Some(user) = &self.user {
            text = format!("user {user} ({text}), no capabilities");
        }
        if let Some(dir) = &self.chroot {
            text.push_str(&format!(", chrooted to {}", dir.display()));
        }
        text
    }

    /// Appended to a failed reload's error: after the switch, files are
    /// read as another user and, chrooted, at other paths.
    pub fn reload_hint(&self) -> String {
        match (&self.user, &self.chroot) {
            (None, None) => String::new(),
            (Some(user), None) => format!(
                " (the tracker now runs as user {user}: the file must be readable by {user})"
            ),
            (user, Some(dir)) => format!(
                " (the tracker is chrooted to {}{}: the file is looked up at its path inside \
                 that directory{})",
                dir.display(),
                user.as_ref()
                    .map_or(String::new(), |u| format!(" as user {u}")),
                user.as_ref()
                    .map_or(String::new(), |u| format!(" and must be readable by {u}")),
            ),
        }
    }
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `struct __user_cap_header_struct` of linux/capability.h.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` of linux/capability.h.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// _LINUX_CAPABILITY_VERSION_3: 64-bit sets, two `CapData`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the effective, permitted, inheritable and ambient sets of this
/// thread (threads started later inherit them).
fn clear_capabilities() -> std::io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads one header and two data structs, both live and
    // laid out as the kernel expects (repr(C) copies of its structs).
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) as libc::c_int })?;
    // SAFETY: prctl with integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

/// Empties the capability bounding set (needs CAP_SETPCAP, so before the
/// user switch). The kernel refuses numbers past its last capability with
/// EINVAL, which ends the loop.
fn drop_bounding_set() {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
}

/// (uid, primary gid) of a user name, or of a numeric uid.
fn lookup_user(name: &str) -> anyhow::Result<(libc::uid_t, libc::gid_t)> {
    let c_name = CString::new(name).context("the name holds a NUL byte")?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (integers and null pointers).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is live for the call; `buf` and its length
    // match; getpwnam_r writes only into `pwd`, `buf` and `result`.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
    if let Ok(uid) = name.parse::<libc::uid_t>() {
        // SAFETY: as above, by uid.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        let gid = if rc == 0 && !result.is_null() {
            pwd.pw_gid
        } else {
            uid
        };
        return Ok((uid, gid));
    }
    if rc != 0 {
        bail!(
            "looking the name up failed: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    bail!("no such user on this system")
}

/// The gid of a group name, or a numeric gid.
fn lookup_group(name: &str) -> anyhow::Result<libc::gid_t> {
    let c_name = CString::new(name).context("the name holds a NUL byte")?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: all-zero is a valid group (integers and null pointers).
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is live for the call; `buf` and its length
    // match; getgrnam_r writes only into `grp`, `buf` and `result`.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Ok(grp.gr_gid);
    }
    if let Ok(gid) = name.parse::<libc::gid_t>() {
        return Ok(gid);
    }
    if rc != 0 {
        bail!(
            "looking the name up failed: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    bail!("no such group on this system")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_hints_name_the_user_and_the_chroot() {
        assert_eq!(Dropped::default().reload_hint(), "");
        let user = Dropped {
            user: Some("nobody".into()),
            chroot: None,
        };
        assert_eq!(
            user.reload_hint(),
            " (the tracker now runs as user nobody: the file must be readable by nobody)"
        );
        let both = Dropped {
            user: Some("nobody".into()),
            chroot: Some("/srv/tracker".into()),
        };
        assert_eq!(
            both.reload_hint(),
            " (the tracker is chrooted to /srv/tracker as user nobody: the file is looked up \
             at its path inside that directory and must be readable by nobody)"
        );
    }

    #[test]
    fn names_that_do_not_exist_are_errors_naming_the_key() {
        let config = PrivilegesConfig {
            user: "no-such-user-l1".into(),
            ..PrivilegesConfig::default()
        };
        let error = format!("{:#}", Plan::resolve(&config).unwrap_err());
        assert_eq!(
            error,
            "privileges.user = \"no-such-user-l1\": no such user on this system"
        );
        let config = PrivilegesConfig {
            group: "no-such-group-l1".into(),
            ..PrivilegesConfig::default()
        };
        let error = format!("{:#}", Plan::resolve(&config).unwrap_err());
        assert!(
            error.starts_with("privileges.group = \"no-such-group-l1\""),
            "{error}"
        );
        // Numeric ids need no entry in the user database.
        let config = PrivilegesConfig {
            user: "4242".into(),
            group: "4343".into(),
            ..PrivilegesConfig::default()
        };
        let plan = Plan::resolve(&config).unwrap();
        assert_eq!(plan.user.map(|(_, uid)| uid), Some(4242));
        assert_eq!(plan.group.map(|(_, gid)| gid), Some(4343));
        assert!(Plan::resolve(&PrivilegesConfig::default())
            .unwrap()
            .is_empty());
    }
}

//! The CPU time a control group lets this process use (`docker --cpus`, a Kubernetes CPU limit, systemd's
//! `CPUQuota=`), so that the pool does not size its regions for CPUs the kernel will not give it.
//!
//! A quota is not a set of CPUs: a process with a quota of one CPU on a two-CPU machine still runs its threads on
//! both, and once the group has used its time for the period (100 ms by default) every thread stops until the next
//! one. Two threads that spin for each other then burn the quota twice as fast as one, so a region is best run on as
//! many threads as the quota allows. The limit is the smallest along the process's group and its ancestors, read from
//! cgroup v2's `cpu.max` or v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`, under the mount that
//! `/proc/self/mountinfo` names. A group outside the visible hierarchy (`/..`) or any file that does not read or
//! parse gives no limit: the pool then sizes for the CPUs alone, as before.

use std::path::{Path, PathBuf};

/// Most levels of groups walked (a deeper path is not believed).
const MAX_DEPTH: usize = 64;

/// The CPUs' worth of time this process may use per period, where a control group limits it.
pub(crate) fn cpu_quota() -> Option<f64> {
    let cgroup = fs_err::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = fs_err::read_to_string("/proc/self/mountinfo").ok()?;
    let (version, group) = cpu_group(&cgroup)?;
    let (root, mount) = cgroup_mount(&mounts, version)?;
    let dirs = group_dirs(&mount, &root, &group)?;
    dirs.iter()
        .filter_map(|d| match version {
            Version::V2 => parse_cpu_max(&fs_err::read_to_string(d.join("cpu.max")).ok()?),
            Version::V1 => parse_cfs(
                &fs_err::read_to_string(d.join("cpu.cfs_quota_us")).ok()?,
                &fs_err::read_to_string(d.join("cpu.cfs_period_us")).ok()?,
            ),
        })
        .reduce(f64::min)
}

/// Which hierarchy holds the CPU controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// `/proc/self/cgroup`: the group of the v1 hierarchy with the `cpu` controller, else the v2 group (`0::/path`).
pub(crate) fn cpu_group(text: &str) -> Option<(Version, String)> {
    let mut v2 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "cpu") {
            return Some((Version::V1, path.to_string()));
        }
    }
    v2.map(|p| (Version::V2, p))
}

/// `/proc/self/mountinfo`: the root inside the hierarchy and the mount point of its mount (`cgroup2`, or a v1
/// `cgroup` mount whose options name `cpu`). A mount point with an escaped character is passed over.
pub(crate) fn cgroup_mount(text: &str, version: Version) -> Option<(String, PathBuf)> {
    text.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mut m = mount.split(' ');
        let (root, point) = (m.nth(3)?, m.next()?);
        let mut f = fs.split(' ');
        let (fstype, options) = (f.next()?, f.nth(1).unwrap_or(""));
        let ours = match version {
            Version::V2 => fstype == "cgroup2",
            Version::V1 => fstype == "cgroup" && options.split(',').any(|o| o == "cpu"),
        };
        (ours && !point.contains('\\') && !root.contains('\\'))
            .then(|| (root.to_string(), PathBuf::from(point)))
    })
}

/// The directories of `group` and its ancestors under a mount of the hierarchy's `root` at `mount`, innermost
/// first, down to the mount itself. `None` for a group outside the mount's root or a path that is not plain.
pub(crate) fn group_dirs(mount: &Path, root: &str, group: &str) -> Option<Vec<PathBuf>> {
    let rel = if root == "/" {
        group
    } else {
        let rest = group.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest
    };
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() > MAX_DEPTH || parts.iter().any(|p| *p == "." || *p == "..") {
        return None;
    }
    Some(
        (0..=parts.len())
            .rev()
            .map(|n| {
                parts[..n]
                    .iter()
                    .fold(mount.to_path_buf(), |d, p| d.join(p))
            })
            .collect(),
    )
}

/// cgroup v2's `cpu.max` (`QUOTA PERIOD` in microseconds, `max` for none) as CPUs.
pub(crate) fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut f = text.split_whitespace();
    let (quota, period) = (f.next()?, f.next()?);
    ratio(quota.parse().ok()?, period.parse().ok()?)
}

/// cgroup v1's `cpu.cfs_quota_us` (`-1` for none) and `cpu.cfs_period_us` as CPUs.
pub(crate) fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    ratio(u64::try_from(quota).ok()?, period.trim().parse().ok()?)
}

fn ratio(quota: u64, period: u64) -> Option<f64> {
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_group_is_found_in_either_hierarchy() {
        let v1 = "9:name=systemd:/\n3:cpuset:/\n2:cpu,cpuacct:/docker/abc\n0::/\n";
        assert_eq!(
            cpu_group(v1),
            Some((Version::V1, "/docker/abc".to_string()))
        );
        let v2 = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            cpu_group(v2),
            Some((
                Version::V2,
                "/user.slice/user-1000.slice/session-2.scope".to_string()
            ))
        );
        assert_eq!(cpu_group("4:memory:/x\n"), None);
        assert_eq!(cpu_group(""), None);
    }

    #[test]
    fn the_mount_of_the_hierarchy_is_found() {
        let mounts = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
            34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n\
            41 31 0:38 /inner /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_mount(mounts, Version::V1),
            Some(("/".to_string(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")))
        );
        assert_eq!(
            cgroup_mount(mounts, Version::V2),
            Some((
                "/inner".to_string(),
                PathBuf::from("/sys/fs/cgroup/unified")
            ))
        );
        let escaped = "41 31 0:38 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_mount(escaped, Version::V2), None);
        assert_eq!(cgroup_mount("garbage\n", Version::V2), None);
    }

    #[test]
    fn a_group_and_its_ancestors_are_walked_inside_the_mount() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(
            group_dirs(m, "/", "/a/b").unwrap(),
            [m.join("a/b"), m.join("a"), m.to_path_buf()]
        );
        assert_eq!(group_dirs(m, "/", "/").unwrap(), [m.to_path_buf()]);
        // A mount of part of the hierarchy (a container's view).
        assert_eq!(
            group_dirs(m, "/docker/abc", "/docker/abc/x").unwrap(),
            [m.join("x"), m.to_path_buf()]
        );
        assert_eq!(group_dirs(m, "/docker/abc", "/docker/abcd"), None);
        assert_eq!(group_dirs(m, "/docker", "/other"), None);
        assert_eq!(
            group_dirs(m, "/", "/../../x"),
            None,
            "outside the namespace"
        );
        let deep = "/a".repeat(MAX_DEPTH + 1);
        assert_eq!(group_dirs(m, "/", &deep), None);
    }

    #[test]
    fn quotas_read_as_cpus() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("0 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 0\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs("100000\n", "100000\n"), Some(1.0));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("x", "100000"), None);
    }

    #[test]
    fn this_machine_reads_a_quota_or_none() {
        if let Some(q) = cpu_quota() {
            assert!(q > 0.0 && q.is_finite(), "{q}");
        }
    }
}

//! The CPU time a control group lets its processes use (`docker --cpus`, a Kubernetes CPU limit, systemd's
//! `CPUQuota=`), so that the pool does not size its regions for CPUs the kernel will not give it.
//!
//! A quota is not a set of CPUs: a process with a quota of one CPU on a two-CPU machine still runs its threads on
//! both, and once the group has used its time for the period (100 ms by default) every thread stops until the next
//! one. Two threads that spin for each other then burn the quota twice as fast as one, so a region is best run on as
//! many threads as the quota allows. The limit is the smallest along the process's group and its ancestors, read from
//! cgroup v2's `cpu.max` or v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`, under a mount that
//! `/proc/self/mountinfo` names and whose root holds the group; a level whose files do not read or parse adds no
//! limit. A group outside the visible hierarchy (`/..`) or no such mount gives no limit: the pool then sizes for
//! the CPUs alone, as before. The quota is the group's: other processes in it share it, and count as other
//! processes on the CPUs, not against the quota.

use std::path::{Path, PathBuf};

/// Most levels of groups walked (a deeper path is not believed).
const MAX_DEPTH: usize = 64;

/// Reads the quota of this process's control group, again at each call (a group's limit and the group a process
/// is in may change); the mount table, which can be large on a container host, is read once.
pub(crate) struct Quota {
    mounts: String,
}

impl Quota {
    /// `None` where the system has no mount table.
    pub(crate) fn open() -> Option<Self> {
        Some(Self {
            mounts: fs_err::read_to_string("/proc/self/mountinfo").ok()?,
        })
    }

    /// The CPUs' worth of time the group allows per period, where it has a limit.
    pub(crate) fn read(&self) -> Option<f64> {
        let cgroup = fs_err::read_to_string("/proc/self/cgroup").ok()?;
        let (version, group) = cpu_group(&cgroup)?;
        let dirs = cgroup_mounts(&self.mounts, version)
            .into_iter()
            .find_map(|(root, mount)| group_dirs(&mount, &root, &group))?;
        let text = |d: &Path, name: &str| fs_err::read_to_string(d.join(name)).ok();
        dirs.iter()
            .filter_map(|d| match version {
                Version::V2 => parse_cpu_max(&text(d, "cpu.max")?),
                Version::V1 => parse_cfs(
                    &text(d, "cpu.cfs_quota_us")?,
                    &text(d, "cpu.cfs_period_us")?,
                ),
            })
            .reduce(f64::min)
    }
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

/// `/proc/self/mountinfo`: the root inside the hierarchy and the mount point of each of its mounts (`cgroup2`, or
/// a v1 `cgroup` mount whose options name `cpu`), in the table's order. A mount point with an escaped character is
/// passed over.
pub(crate) fn cgroup_mounts(text: &str, version: Version) -> Vec<(String, PathBuf)> {
    text.lines()
        .filter_map(|line| {
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
        .collect()
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
    fn the_mounts_of_the_hierarchy_are_found() {
        let mounts = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
            34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n\
            41 31 0:38 /inner /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n\
            42 31 0:38 / /mnt/whole rw,relatime - cgroup2 cgroup2 rw\n";
        let v1 = cgroup_mounts(mounts, Version::V1);
        assert_eq!(
            v1,
            [("/".into(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))]
        );
        let v2 = cgroup_mounts(mounts, Version::V2);
        assert_eq!(
            v2,
            [
                ("/inner".into(), PathBuf::from("/sys/fs/cgroup/unified")),
                ("/".into(), PathBuf::from("/mnt/whole"))
            ]
        );
        // A group outside the first mount's root is found under the next.
        let dirs = v2
            .iter()
            .find_map(|(root, m)| group_dirs(m, root, "/other/x"))
            .unwrap();
        assert_eq!(dirs[0], Path::new("/mnt/whole/other/x"));
        let escaped = "41 31 0:38 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_mounts(escaped, Version::V2), []);
        assert_eq!(cgroup_mounts("garbage\n", Version::V2), []);
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
        if let Some(q) = Quota::open().and_then(|q| q.read()) {
            assert!(q > 0.0 && q.is_finite(), "{q}");
        }
    }
}

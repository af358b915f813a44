//! Sensitive files are judged on the file the kernel opened, not on the string a program passed:
//! every way of reaching a watched file that a runc pod can take - a file symlink, a directory
//! symlink, `/proc/self/root/...`, a relative path with `..`, a path string in a freshly
//! mapped page that was never touched - is reported exactly once, with the requested and the
//! resolved path; a harmless file reached through a symlink next to a sensitive directory is
//! not reported at all.

use std::time::Duration;

use sensor_tests::capture_checks::{ev, sensor_for};
use sensor_tests::rootfs::{self, AWS_CREDENTIALS, IRSA_TOKEN, SA_SIBLING_FILE};
use sensor_tests::{ContainerConfig, Kubelet, Pod, Runc, SensorProcess, runc, util};
use serde_json::Value;

const EV: Duration = Duration::from_secs(15);
const RUN: Duration = runc::DEFAULT_TIMEOUT;

/// Every file event of the pod's container, once its cgroup is gone (the final syscall set is
/// the last event of a container: every open it made was reported before it).
fn file_events_of(sensor: &SensorProcess, pod: &Pod, container: &str) -> Vec<Value> {
    sensor.expect(&ev("syscalls", pod, container).eq("final", true), EV);
    sensor.find_all(&ev("file", pod, container))
}

#[test]
fn reads_through_symlinks_proc_root_and_dotdot_are_reported_once_with_both_paths() {
    let ns = util::unique_name("sf");
    let pod = Pod::deployment_replica(&ns, "evader")
        .with_container("sh")
        .with_container("py");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let runc = Runc::new();
    let sa = rootfs::SERVICE_ACCOUNT_DIR;
    let token = format!("{sa}/token");
    let k8s_dir = sa.trim_end_matches("/serviceaccount");

    // (requested path, resolved path, pattern); each read is its own `/bin/cat` (a plain `cat`
    // is busybox re-executed as `/proc/self/exe`, comm `exe`).
    let proc_root = format!("/proc/self/root{token}");
    let dotdot = format!("..{token}");
    let reads: Vec<(String, String, &str)> = vec![
        (
            "/tmp/t".into(),
            token.clone(),
            "/var/run/secrets/kubernetes.io/serviceaccount/",
        ),
        (
            "/tmp/s/token".into(),
            token.clone(),
            "/var/run/secrets/kubernetes.io/serviceaccount/",
        ),
        (
            proc_root.clone(),
            token.clone(),
            "/var/run/secrets/kubernetes.io/serviceaccount/",
        ),
        (
            dotdot.clone(),
            token.clone(),
            "/var/run/secrets/kubernetes.io/serviceaccount/",
        ),
        (
            "/tmp/irsa".into(),
            IRSA_TOKEN.into(),
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/",
        ),
        (
            "/tmp/aws/credentials".into(),
            AWS_CREDENTIALS.into(),
            "*/.aws/credentials",
        ),
        (
            "/tmp/env".into(),
            "/proc/1/environ".into(),
            "/proc/*/environ",
        ),
    ];
    let script = format!(
        "set -e; ln -s {token} /tmp/t; ln -s {sa} /tmp/s; ln -s {IRSA_TOKEN} /tmp/irsa; \
         ln -s /root/.aws /tmp/aws; ln -s /proc/1/environ /tmp/env; ln -s {k8s_dir} /tmp/k; \
         /bin/cat /tmp/t >/dev/null; /bin/cat /tmp/s/token >/dev/null; \
         /bin/cat {proc_root} >/dev/null; cd /tmp; /bin/cat {dotdot} >/dev/null; cd /; \
         /bin/cat /tmp/irsa >/dev/null; /bin/cat /tmp/aws/credentials >/dev/null; /bin/cat /tmp/env >/dev/null; \
         /bin/cat /tmp/k/settings/config >/dev/null; /bin/cat {sa}/../settings/config >/dev/null; echo ok"
    );
    let out = runc.run(&ContainerConfig::sh(&pod, "sh", &script), RUN);
    out.assert_success();
    assert_eq!(out.stdout, "ok\n");

    let got = file_events_of(&sensor, &pod, "sh");
    let summary: Vec<String> = got
        .iter()
        .map(|e| format!("{} <- {}", e["path"], e["requested"]))
        .collect();
    for (requested, resolved, pattern) in &reads {
        let hits: Vec<&Value> = got
            .iter()
            .filter(|e| e["requested"] == requested.as_str())
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "a read of {resolved} requested as {requested} is reported once; events: {summary:#?}"
        );
        assert_eq!(hits[0]["path"], resolved.as_str(), "{}", hits[0]);
        assert_eq!(hits[0]["pattern"], *pattern, "{}", hits[0]);
        assert_eq!(hits[0]["comm"], "cat", "{}", hits[0]);
    }
    assert_eq!(
        got.len(),
        reads.len(),
        "nothing else is reported - not the harmless {SA_SIBLING_FILE} reached through a \
         symlink or a path naming the serviceaccount directory: {summary:#?}"
    );

    // The path string in a page of a fresh file mapping that the process never touched: the
    // kernel faults it in, a probe reading user memory at syscall entry could not.
    let py = format!(
        "import ctypes, mmap, os\n\
         path = b'{token}\\0'\n\
         with open('/tmp/p', 'wb') as f: f.write(path.ljust(mmap.PAGESIZE, b'\\0'))\n\
         fd = os.open('/tmp/p', os.O_RDWR)\n\
         m = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_PRIVATE)\n\
         addr = ctypes.addressof(ctypes.c_char.from_buffer(m))\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         tfd = libc.open(ctypes.c_void_p(addr), os.O_RDONLY)\n\
         assert tfd >= 0, ctypes.get_errno()\n\
         print(os.read(tfd, 5).decode())\n"
    );
    let out = runc.run(
        &ContainerConfig::for_pod(&pod, "py", &[runc::CONTAINER_PYTHON, "-S", "-c", &py])
            .host_usr(),
        RUN,
    );
    out.assert_success();
    assert_eq!(out.stdout.trim(), &rootfs::DUMMY_TOKEN[..5]);
    let got = file_events_of(&sensor, &pod, "py");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["path"], token.as_str(), "{}", got[0]);
    assert!(
        got[0]["requested"].is_null(),
        "requested as the path itself: {}",
        got[0]
    );
}

//! Kubernetes manifests checked with PyPI's `kubernetes-validate` (offline OpenAPI schemas),
//! strictly, against both ends of the supported range (1.29 and 1.34).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `kubernetes-validate` from `KUBERNETES_VALIDATE` (set by `cargo xtask test`); never skipped.
pub fn kubernetes_validate() -> PathBuf {
    let p = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "KUBERNETES_VALIDATE is not set: this test validates the NetworkPolicy draft with \
             PyPI's kubernetes-validate; run it through `cargo xtask test` (which installs it \
             into target/pytools and sets KUBERNETES_VALIDATE), or set KUBERNETES_VALIDATE to \
             the tool's path"
            )
        });
    assert!(
        p.is_file(),
        "KUBERNETES_VALIDATE={} does not exist",
        p.display()
    );
    p
}

/// Panics unless `file` (whose content is `text`, for the message) validates.
#[track_caller]
pub fn assert_validates(file: &Path, text: &str) {
    let tool = kubernetes_validate();
    for version in ["1.29", "1.34"] {
        let out = Command::new(&tool)
            .args(["--strict", "-k", version])
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.contains("passed for resource networkpolicy/"),
            "{} does not validate strictly against Kubernetes {version}:\n{report}\n--- manifest ---\n{text}",
            file.display()
        );
    }
}

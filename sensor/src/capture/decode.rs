//! Ring-buffer records -> typed kernel events, with the tag and the length checked against
//! `sensor-common` before anything is read; each kind's own fields are checked by its module
//! in [`super::kinds`]. A bad record is an error the caller counts.

use sensor_common::{EventHeader, EventKind};

use super::kinds::raw::read;
pub use super::kinds::{
    KernelEvent,
    exec::{exe as exec_exe, split_args},
    file::{opened_path, requested_path},
    raw::{DecodeError, c_str},
};

/// Checks the tag and the length, then hands the record to its kind's decoder.
pub fn decode(bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
    if bytes.len() < size_of::<EventHeader>() {
        return Err(DecodeError::ShortHeader { len: bytes.len() });
    }
    let header: EventHeader = read(bytes);
    let kind = EventKind::try_from(header.kind).map_err(DecodeError::UnknownKind)?;
    let expected = kind.size();
    if bytes.len() != expected {
        return Err(DecodeError::BadLength {
            kind,
            len: bytes.len(),
            expected,
        });
    }
    if header.size as usize != bytes.len() {
        return Err(DecodeError::SizeMismatch {
            kind,
            declared: header.size,
            len: bytes.len(),
        });
    }
    super::kinds::decode(kind, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::{
        ExecEvent, ExitEvent, FileEvent, FlowEvent, FlowKey, ForkEvent, exec_flags, file_flags,
    };

    fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: test helper viewing a repr(C) value as bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
    }

    fn header(kind: EventKind) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            size: kind.size() as u32,
            ts_ns: 1,
            cgroup_id: 42,
            pid: 10,
            tid: 11,
        }
    }

    fn exec_event() -> ExecEvent {
        let mut e = ExecEvent {
            header: header(EventKind::Exec),
            ppid: 1,
            uid: 0,
            gid: 0,
            flags: exec_flags::ARGS_TRUNCATED,
            filename_len: 7,
            args_len: 14,
            comm: [0; 16],
            filename: [0; sensor_common::limits::MAX_PATH],
            args: [0; sensor_common::limits::MAX_ARGS],
            exe_depth: 2,
            exe_flags: 0,
            exe: [0; sensor_common::limits::MAX_PATH_DEPTH * sensor_common::limits::PATH_NAME_SLOT],
        };
        e.exe[..4].copy_from_slice(b"dash");
        e.exe[64..67].copy_from_slice(b"bin");
        e.filename[..7].copy_from_slice(b"/bin/sh");
        e.args[..14].copy_from_slice(b"sh\0-c\0echo hi\0");
        e
    }

    #[test]
    fn decodes_each_kind_with_its_fields() {
        let e = exec_event();
        let KernelEvent::Exec(got) = decode(&bytes_of(&e)).unwrap() else {
            panic!("not exec")
        };
        assert_eq!(got.header.cgroup_id, 42);
        assert_eq!(c_str(&got.filename), "/bin/sh");
        assert_eq!(
            split_args(&got.args[..got.args_len as usize]),
            ["sh", "-c", "echo hi"]
        );
        assert_eq!(exec_exe(&got).as_deref(), Some("/bin/dash"));

        let f = FlowEvent {
            header: header(EventKind::Flow),
            key: FlowKey {
                cgroup_id: 42,
                remote_addr: [0; 16],
                remote_port: 443,
                local_port: 0,
                protocol: 6,
                direction: 1,
                _pad: [0; 2],
            },
            origin: 1,
            _pad: 0,
            local_addr: [0; 16],
        };
        let KernelEvent::Flow(got) = decode(&bytes_of(&f)).unwrap() else {
            panic!("not flow")
        };
        assert_eq!(got.key.remote_port, 443);

        let x = ExitEvent {
            header: header(EventKind::Exit),
            exit_code: 7 << 8,
            _pad: 0,
        };
        assert!(
            matches!(decode(&bytes_of(&x)).unwrap(), KernelEvent::Exit(e) if e.exit_code == 7 << 8)
        );
    }

    #[test]
    fn short_unknown_and_mislengthed_records_are_errors() {
        assert_eq!(
            decode(&[0u8; 8]).err(),
            Some(DecodeError::ShortHeader { len: 8 })
        );

        let mut h = header(EventKind::Fork);
        h.kind = 99;
        let mut bytes = bytes_of(&h);
        bytes.resize(40, 0);
        assert_eq!(decode(&bytes).err(), Some(DecodeError::UnknownKind(99)));

        let f = ForkEvent {
            header: header(EventKind::Fork),
            child_pid: 5,
            _pad: 0,
        };
        let mut bytes = bytes_of(&f);
        bytes.push(0);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::BadLength {
                kind: EventKind::Fork,
                ..
            })
        ));

        let mut f = f;
        f.header.size = 12;
        assert!(matches!(
            decode(&bytes_of(&f)),
            Err(DecodeError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn out_of_range_length_fields_are_errors() {
        let mut e = exec_event();
        e.args_len = 5000;
        assert_eq!(
            decode(&bytes_of(&e)).err(),
            Some(DecodeError::BadField {
                kind: EventKind::Exec
            })
        );
    }

    fn file_event(requested: &str, resolved: &[&str]) -> FileEvent {
        use sensor_common::limits::{MAX_OPEN_PATH, MAX_PATH_DEPTH, PATH_NAME_SLOT};
        let mut e = FileEvent {
            header: header(EventKind::FileOpen),
            flags: 0,
            open_flags: 0,
            path_len: requested.len() as u32,
            depth: resolved.len() as u32,
            fd: 3,
            _pad: 0,
            comm: [0; 16],
            path: [0; MAX_OPEN_PATH],
            resolved: [0; MAX_PATH_DEPTH * PATH_NAME_SLOT],
        };
        e.path[..requested.len()].copy_from_slice(requested.as_bytes());
        for (i, name) in resolved.iter().enumerate() {
            e.resolved[i * PATH_NAME_SLOT..i * PATH_NAME_SLOT + name.len()]
                .copy_from_slice(name.as_bytes());
        }
        e
    }

    #[test]
    fn opened_paths_come_from_the_kernel_walk_and_the_request_is_evidence() {
        // Components arrive leaf first.
        let token = [
            "token",
            "serviceaccount",
            "kubernetes.io",
            "secrets",
            "run",
            "var",
        ];
        let e = file_event("../s/token", &token);
        assert_eq!(
            opened_path(&e),
            "/var/run/secrets/kubernetes.io/serviceaccount/token"
        );
        assert_eq!(requested_path(&e).as_deref(), Some("../s/token"));
        let mut handle = file_event("", &token);
        handle.flags = file_flags::REQUESTED_UNREADABLE;
        assert_eq!(requested_path(&handle), None);
        assert_eq!(opened_path(&file_event("x", &[])), "/");
        let mut bad = file_event("token", &token);
        bad.depth = 99;
        assert_eq!(
            decode(&bytes_of(&bad)).err(),
            Some(DecodeError::BadField {
                kind: EventKind::FileOpen
            })
        );
    }

    #[test]
    fn args_splitting_handles_empty_and_trailing_nul() {
        assert!(split_args(b"").is_empty());
        assert_eq!(split_args(b"a\0"), ["a"]);
        assert_eq!(split_args(b"a\0\0b\0"), ["a", "", "b"]);
        assert_eq!(c_str(b"abc"), "abc");
    }
}

//! A process exited: an `exit` event (code or signal), then the process table marks it gone.

use super::Context;
use crate::{
    attribution::event::{Detail, Event},
    capture::kinds::exit::Record,
};

pub fn attribute(x: &Record, cx: &mut Context<'_>, out: &mut Vec<Event>) {
    let pid = x.header.pid;
    let (exit_code, signal) = wait_status(x.exit_code);
    let ev = cx.event(
        x.header.ts_ns,
        x.header.cgroup_id,
        pid,
        Detail::Exit { exit_code, signal },
    );
    cx.attributor.processes.exit(pid);
    out.push(ev);
}

/// Splits a kernel wait status into (exit code, signal): exactly one is set.
fn wait_status(status: u32) -> (Option<u32>, Option<u32>) {
    let signal = status & 0x7f;
    if signal == 0 {
        (Some((status >> 8) & 0xff), None)
    } else {
        (None, Some(signal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_splits_code_and_signal() {
        assert_eq!(wait_status(7 << 8), (Some(7), None));
        assert_eq!(wait_status(0), (Some(0), None));
        assert_eq!(wait_status(9), (None, Some(9)));
        assert_eq!(wait_status(0x80 | 11), (None, Some(11)));
    }
}

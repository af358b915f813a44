//! Graduation of a workload's network draft: ready to enforce when an audit set has been
//! loaded for at least the graduation window and no flow of the workload got a `would-deny`
//! verdict within it. A reload starts the audit over (the new set has not been audited yet).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::detect::model::RuleId;
use crate::profile::model::ProfileKey;

/// The live audit as the API sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStatus {
    pub policies: usize,
    /// When the current set was loaded.
    pub since: SystemTime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkGraduation {
    /// An audit set is loaded (otherwise `ready_to_enforce` is false).
    pub audited: bool,
    pub ready_to_enforce: bool,
    /// For people, e.g. "ready to enforce (no would-deny for 24h under 3 audited policies)".
    pub summary: String,
}

/// The last `would-deny` of any container of `namespace/workload` (a NetworkPolicy selects
/// pods, not containers).
pub fn last_would_deny(
    last_fired: &HashMap<(ProfileKey, RuleId), SystemTime>,
    namespace: &str,
    workload: &str,
) -> Option<SystemTime> {
    last_fired
        .iter()
        .filter(|((k, rule), _)| {
            *rule == RuleId::WouldDeny && k.namespace == namespace && k.workload == workload
        })
        .map(|(_, t)| *t)
        .max()
}

pub fn network_graduation(
    audit: Option<&AuditStatus>,
    last_would_deny: Option<SystemTime>,
    window: Duration,
    now: SystemTime,
) -> NetworkGraduation {
    let Some(audit) = audit else {
        return NetworkGraduation {
            audited: false,
            ready_to_enforce: false,
            summary: "no audit policies loaded".to_string(),
        };
    };
    let policies = match audit.policies {
        1 => "1 audited policy".to_string(),
        n => format!("{n} audited policies"),
    };
    let ago = |t: SystemTime| {
        humantime::format_duration(Duration::from_secs(
            now.duration_since(t).unwrap_or_default().as_secs(),
        ))
        .to_string()
    };
    let window_text = humantime::format_duration(window);
    let not_ready = |summary: String| NetworkGraduation {
        audited: true,
        ready_to_enforce: false,
        summary,
    };
    if let Some(t) = last_would_deny.filter(|t| now.duration_since(*t).unwrap_or_default() < window)
    {
        return not_ready(format!(
            "not ready: would-deny {} ago (within the {window_text} window, under {policies})",
            ago(t)
        ));
    }
    if now.duration_since(audit.since).unwrap_or_default() < window {
        return not_ready(format!(
            "not ready: audited for {} of the {window_text} window (no would-deny yet under \
             {policies})",
            ago(audit.since)
        ));
    }
    NetworkGraduation {
        audited: true,
        ready_to_enforce: true,
        summary: format!("ready to enforce (no would-deny for {window_text} under {policies})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn key(workload: &str, container: &str) -> ProfileKey {
        ProfileKey {
            namespace: "ns".into(),
            workload: workload.into(),
            container: container.into(),
        }
    }

    #[test]
    fn without_an_audit_set_nothing_graduates() {
        let now = SystemTime::now();
        let g = network_graduation(None, None, HOUR, now);
        assert!(!g.audited && !g.ready_to_enforce);
        assert_eq!(g.summary, "no audit policies loaded");
    }

    #[test]
    fn a_recent_would_deny_or_a_short_audit_keeps_the_draft_from_graduating() {
        let now = SystemTime::now();
        let long_ago = AuditStatus {
            policies: 3,
            since: now - 2 * HOUR,
        };
        let g = network_graduation(
            Some(&long_ago),
            Some(now - 180 * Duration::from_secs(1)),
            HOUR,
            now,
        );
        assert!(g.audited && !g.ready_to_enforce);
        assert_eq!(
            g.summary,
            "not ready: would-deny 3m ago (within the 1h window, under 3 audited policies)"
        );

        let fresh = AuditStatus {
            policies: 1,
            since: now - Duration::from_secs(300),
        };
        let g = network_graduation(Some(&fresh), None, HOUR, now);
        assert!(!g.ready_to_enforce);
        assert_eq!(
            g.summary,
            "not ready: audited for 5m of the 1h window (no would-deny yet under 1 audited policy)"
        );

        // A would-deny older than the window no longer counts.
        let g = network_graduation(
            Some(&long_ago),
            Some(now - 90 * 60 * Duration::from_secs(1)),
            HOUR,
            now,
        );
        assert!(g.ready_to_enforce);
        assert_eq!(
            g.summary,
            "ready to enforce (no would-deny for 1h under 3 audited policies)"
        );
    }

    #[test]
    fn the_last_would_deny_is_per_workload_over_its_containers() {
        let now = SystemTime::now();
        let mut fired = HashMap::new();
        fired.insert((key("web", "app"), RuleId::WouldDeny), now - HOUR);
        fired.insert(
            (key("web", "sidecar"), RuleId::WouldDeny),
            now - Duration::from_secs(60),
        );
        fired.insert((key("web", "app"), RuleId::UnexpectedEgress), now);
        fired.insert((key("db", "app"), RuleId::WouldDeny), now);
        assert_eq!(
            last_would_deny(&fired, "ns", "web"),
            Some(now - Duration::from_secs(60))
        );
        assert_eq!(last_would_deny(&fired, "ns", "api"), None);
    }
}

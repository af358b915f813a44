//! `sensor seccomp` and `sensor netpol`: the drafts of a profile, from the daemon or offline
//! from a saved profile (the same generators the daemon uses). Drafts go to stdout, notes to
//! stderr (so `sensor seccomp ... > draft.json` keeps the notes on the terminal). A server error
//! prints its status message and exits 1.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::{Args, ValueEnum};

use crate::ai;
use crate::api::{self, proto};
use crate::drafts::{render, seccomp::SeccompMode};
use crate::profile::model::ApplicationProfile;

use super::remote::*;

#[derive(Args, Debug)]
pub struct SeccompArgs {
    #[command(flatten)]
    pub target: ProfileArgs,
    /// enforce: unobserved syscalls fail with EPERM; audit: they are logged, not blocked.
    #[arg(long, value_enum, default_value_t = Mode::Enforce)]
    pub mode: Mode,
    /// json: the Localhost profile kubelet reads; spo: a security-profiles-operator
    /// SeccompProfile (YAML; v1, cluster-scoped, for SPO v1.0.0 and later).
    #[arg(long, value_enum, default_value_t = SeccompFormat::Json)]
    pub format: SeccompFormat,
}

#[derive(Args, Debug)]
pub struct NetpolArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Namespace of the workload.
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        required_unless_present = "profile"
    )]
    pub namespace: Option<String>,
    /// Workload name; the policy covers all its containers.
    #[arg(
        long,
        short = 'w',
        value_name = "W",
        required_unless_present = "profile"
    )]
    pub workload: Option<String>,
    /// kubernetes: networking.k8s.io/v1 NetworkPolicy; cilium: CiliumNetworkPolicy (egress by
    /// DNS name).
    #[arg(long, value_enum, default_value_t = Flavor::Kubernetes)]
    pub flavor: Flavor,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PolicyFormat::Yaml)]
    pub format: PolicyFormat,
    /// Work offline from saved profiles of the workload's containers (repeat for each
    /// container); no agent needed.
    #[arg(long, value_name = "FILE")]
    pub profile: Vec<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompFormat {
    Json,
    Spo,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Kubernetes,
    Cilium,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    Yaml,
    Json,
}

impl Mode {
    fn proto(self) -> proto::SeccompMode {
        match self {
            Mode::Enforce => proto::SeccompMode::Enforce,
            Mode::Audit => proto::SeccompMode::Audit,
        }
    }

    fn draft(self) -> SeccompMode {
        match self {
            Mode::Enforce => SeccompMode::Enforce,
            Mode::Audit => SeccompMode::Audit,
        }
    }
}

impl SeccompFormat {
    fn proto(self) -> proto::SeccompFormat {
        match self {
            SeccompFormat::Json => proto::SeccompFormat::OciJson,
            SeccompFormat::Spo => proto::SeccompFormat::SpoYaml,
        }
    }

    fn draft(self) -> render::SeccompFormat {
        match self {
            SeccompFormat::Json => render::SeccompFormat::OciJson,
            SeccompFormat::Spo => render::SeccompFormat::SpoYaml,
        }
    }
}

impl Flavor {
    fn proto(self) -> proto::NetworkPolicyFlavor {
        match self {
            Flavor::Kubernetes => proto::NetworkPolicyFlavor::Kubernetes,
            Flavor::Cilium => proto::NetworkPolicyFlavor::Cilium,
        }
    }

    fn draft(self) -> render::PolicyFlavor {
        match self {
            Flavor::Kubernetes => render::PolicyFlavor::Kubernetes,
            Flavor::Cilium => render::PolicyFlavor::Cilium,
        }
    }
}

impl PolicyFormat {
    fn proto(self) -> proto::PolicyFormat {
        match self {
            PolicyFormat::Yaml => proto::PolicyFormat::Yaml,
            PolicyFormat::Json => proto::PolicyFormat::Json,
        }
    }

    fn draft(self) -> render::PolicyFormat {
        match self {
            PolicyFormat::Yaml => render::PolicyFormat::Yaml,
            PolicyFormat::Json => render::PolicyFormat::Json,
        }
    }
}

pub async fn seccomp(args: SeccompArgs) -> Result<()> {
    let (content, notes, localhost_profile) = match &args.target.profile {
        Some(path) => {
            let p = load_profile(path)?;
            check_key(path, &p, &args.target)?;
            // The messages the agent would answer with.
            let d = render::seccomp(&p, args.mode.draft(), args.format.draft())
                .map_err(|e| anyhow!("{}", api::lookup::RequestError::from(e)))?;
            (d.content, d.notes, d.localhost_profile)
        }
        None => {
            let addr = &args.target.server.server;
            let mut client = args.target.server.connect().await?;
            let r = client
                .get_seccomp_profile(proto::SeccompRequest {
                    r#ref: Some(profile_ref(&args.target)),
                    mode: args.mode.proto().into(),
                    format: args.format.proto().into(),
                })
                .await
                .map_err(|s| status_error(addr, s))?
                .into_inner();
            (r.content, r.notes, r.localhost_profile)
        }
    };
    out(&content)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    if args.format == SeccompFormat::Json {
        eprintln!(
            "note: install under kubelet's seccomp dir (/var/lib/kubelet/seccomp/{localhost_profile}); \
             pods reference it as localhostProfile: {localhost_profile}"
        );
    }
    Ok(())
}

pub async fn netpol(args: NetpolArgs) -> Result<()> {
    let (content, notes) = if args.profile.is_empty() {
        let addr = &args.server.server;
        let mut client = args.server.connect().await?;
        let r = client
            .get_network_policy(proto::NetworkPolicyRequest {
                namespace: args.namespace.clone().unwrap_or_default(),
                workload: args.workload.clone().unwrap_or_default(),
                flavor: args.flavor.proto().into(),
                format: args.format.proto().into(),
            })
            .await
            .map_err(|s| status_error(addr, s))?
            .into_inner();
        (r.content, r.notes)
    } else {
        let profiles = args
            .profile
            .iter()
            .map(|path| {
                let p = load_profile(path)?;
                let (ns, w) = (&p.key.namespace, &p.key.workload);
                if args.namespace.as_ref().is_some_and(|n| n != ns)
                    || args.workload.as_ref().is_some_and(|x| x != w)
                {
                    bail!(
                        "{}: is a profile of workload {ns}/{w}, not {}/{}",
                        path.display(),
                        args.namespace.as_deref().unwrap_or(ns),
                        args.workload.as_deref().unwrap_or(w)
                    );
                }
                Ok((path, p))
            })
            .collect::<Result<Vec<_>>>()?;
        let (first_path, first) = &profiles[0];
        if let Some((path, other)) = profiles.iter().find(|(_, p)| {
            (&p.key.namespace, &p.key.workload) != (&first.key.namespace, &first.key.workload)
        }) {
            bail!(
                "--profile files of different workloads: {} is {}/{}, {} is {}/{} (a policy is per workload)",
                first_path.display(),
                first.key.namespace,
                first.key.workload,
                path.display(),
                other.key.namespace,
                other.key.workload
            );
        }
        let refs: Vec<&ApplicationProfile> = profiles.iter().map(|(_, p)| p).collect();
        let d = render::network_policy(
            &refs,
            args.flavor.draft(),
            args.format.draft(),
            ai::Catalogue::embedded(),
        )
        .map_err(|e| anyhow!("{}", api::lookup::RequestError::from(e)))?;
        (d.content, d.notes)
    };
    out(&content)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

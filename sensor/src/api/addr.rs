//! Where the API listens (`sensor run --grpc-listen`) and where the client subcommands reach it
//! (`--server`): `unix:/path` or `host:port` / `tcp://host:port`.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
};

/// The default of `--grpc-listen` and `--server`.
pub const DEFAULT_ADDR: &str = "unix:/run/sensor/sensor.sock";

/// `sun_path` holds 108 bytes including the terminating NUL.
const UNIX_PATH_MAX: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket (served with mode 0600).
    Unix(PathBuf),
    /// TCP (served only with `insecure_tcp` until TLS with client certificates lands).
    Tcp(SocketAddr),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenAddrError {
    #[error("empty address (expected `unix:/path` or `host:port`)")]
    Empty,
    #[error("`{0}`: the Unix socket path is empty")]
    EmptyUnixPath(String),
    #[error("`{input}`: `unix://` must be followed by an absolute path (`unix:///run/x.sock`)")]
    UnixNotAbsolute { input: String },
    #[error("`{input}`: a Unix socket path is at most {UNIX_PATH_MAX} bytes, this one has {len}")]
    UnixPathTooLong { input: String, len: usize },
    #[error("`{input}`: unsupported scheme `{scheme}` (expected `unix:` or `tcp://`)")]
    UnknownScheme { input: String, scheme: String },
    #[error("`{input}`: missing port (expected `host:port`, e.g. `127.0.0.1:50051`)")]
    MissingPort { input: String },
    #[error("`{input}`: invalid port `{port}` (expected 1-65535)")]
    BadPort { input: String, port: String },
    #[error(
        "`{input}`: invalid host `{host}` (expected an IP address or `localhost`; IPv6 in brackets: `[::1]:50051`)"
    )]
    BadHost { input: String, host: String },
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ListenAddrError::Empty);
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            return parse_unix(input, rest);
        }
        let hostport = match s.split_once("://") {
            Some(("tcp", rest)) => rest,
            Some((scheme, _)) => {
                return Err(ListenAddrError::UnknownScheme {
                    input: input.to_string(),
                    scheme: scheme.to_string(),
                });
            }
            None => s,
        };
        parse_tcp(input, hostport).map(ListenAddr::Tcp)
    }
}

/// `unix:PATH` (relative paths allowed, as in gRPC's naming) or `unix://ABSOLUTE_PATH`.
fn parse_unix(input: &str, rest: &str) -> Result<ListenAddr, ListenAddrError> {
    let path = match rest.strip_prefix("//") {
        Some(abs) if abs.starts_with('/') => abs,
        Some("") => return Err(ListenAddrError::EmptyUnixPath(input.to_string())),
        Some(_) => {
            return Err(ListenAddrError::UnixNotAbsolute {
                input: input.to_string(),
            });
        }
        None => rest,
    };
    if path.is_empty() {
        return Err(ListenAddrError::EmptyUnixPath(input.to_string()));
    }
    if path.len() > UNIX_PATH_MAX {
        return Err(ListenAddrError::UnixPathTooLong {
            input: input.to_string(),
            len: path.len(),
        });
    }
    Ok(ListenAddr::Unix(PathBuf::from(path)))
}

fn parse_tcp(input: &str, hostport: &str) -> Result<SocketAddr, ListenAddrError> {
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Err(ListenAddrError::MissingPort {
            input: input.to_string(),
        });
    };
    // `::1` without brackets splits inside the address: say "missing port", not "bad port".
    if host.contains(':') && !host.starts_with('[') {
        return Err(ListenAddrError::MissingPort {
            input: input.to_string(),
        });
    }
    let port: u16 = match port.parse() {
        Ok(p) if p != 0 => p,
        _ => {
            return Err(ListenAddrError::BadPort {
                input: input.to_string(),
                port: port.to_string(),
            });
        }
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = if bare.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        match bare.parse::<IpAddr>() {
            // Brackets are for IPv6 only, and IPv6 needs them.
            Ok(ip @ IpAddr::V6(_)) if host.starts_with('[') => ip,
            Ok(ip @ IpAddr::V4(_)) if !host.starts_with('[') => ip,
            _ => {
                return Err(ListenAddrError::BadHost {
                    input: input.to_string(),
                    host: host.to_string(),
                });
            }
        }
    };
    Ok(SocketAddr::new(ip, port))
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddr::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ListenAddr, ListenAddrError> {
        s.parse()
    }

    #[test]
    fn unix_forms() {
        let want = ListenAddr::Unix(PathBuf::from("/run/sensor/sensor.sock"));
        assert_eq!(parse(DEFAULT_ADDR).unwrap(), want);
        assert_eq!(parse("unix:///run/sensor/sensor.sock").unwrap(), want);
        assert_eq!(
            parse("unix:sensor.sock").unwrap(),
            ListenAddr::Unix(PathBuf::from("sensor.sock"))
        );
        assert_eq!(want.to_string(), DEFAULT_ADDR);
    }

    #[test]
    fn unix_errors() {
        assert_eq!(parse(""), Err(ListenAddrError::Empty));
        assert_eq!(parse("  "), Err(ListenAddrError::Empty));
        assert_eq!(
            parse("unix:"),
            Err(ListenAddrError::EmptyUnixPath("unix:".into()))
        );
        assert_eq!(
            parse("unix://"),
            Err(ListenAddrError::EmptyUnixPath("unix://".into()))
        );
        assert!(matches!(
            parse("unix://run/x.sock"),
            Err(ListenAddrError::UnixNotAbsolute { .. })
        ));
        let long = format!("unix:/{}", "a".repeat(200));
        let err = parse(&long).unwrap_err();
        assert_eq!(
            err,
            ListenAddrError::UnixPathTooLong {
                input: long.clone(),
                len: 201
            }
        );
        assert!(err.to_string().contains("at most 107 bytes"), "{err}");
    }

    #[test]
    fn tcp_forms() {
        let v4: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(parse("127.0.0.1:50051").unwrap(), ListenAddr::Tcp(v4));
        assert_eq!(parse("tcp://127.0.0.1:50051").unwrap(), ListenAddr::Tcp(v4));
        assert_eq!(parse("localhost:50051").unwrap(), ListenAddr::Tcp(v4));
        let v6: SocketAddr = "[::1]:50051".parse().unwrap();
        assert_eq!(parse("tcp://[::1]:50051").unwrap(), ListenAddr::Tcp(v6));
        assert_eq!(parse("[::]:1").unwrap().to_string(), "tcp://[::]:1");
    }

    #[test]
    fn tcp_errors() {
        assert!(matches!(
            parse("127.0.0.1"),
            Err(ListenAddrError::MissingPort { .. })
        ));
        assert!(matches!(
            parse("::1"),
            Err(ListenAddrError::MissingPort { .. })
        ));
        assert!(matches!(
            parse("::1:80"),
            Err(ListenAddrError::MissingPort { .. })
        ));
        assert_eq!(
            parse("127.0.0.1:http"),
            Err(ListenAddrError::BadPort {
                input: "127.0.0.1:http".into(),
                port: "http".into()
            })
        );
        assert!(matches!(
            parse("127.0.0.1:0"),
            Err(ListenAddrError::BadPort { .. })
        ));
        assert!(matches!(
            parse("127.0.0.1:70000"),
            Err(ListenAddrError::BadPort { .. })
        ));
        assert!(matches!(
            parse("agent.example:50051"),
            Err(ListenAddrError::BadHost { .. })
        ));
        assert!(matches!(
            parse("[127.0.0.1]:1"),
            Err(ListenAddrError::BadHost { .. })
        ));
        assert_eq!(
            parse("http://127.0.0.1:50051"),
            Err(ListenAddrError::UnknownScheme {
                input: "http://127.0.0.1:50051".into(),
                scheme: "http".into()
            })
        );
    }
}

//! `--metrics-listen`: where the metrics and health endpoint listens.

use std::net::{Ipv4Addr, SocketAddr};

/// Parses `IP:PORT`, `[IPv6]:PORT`, or `:PORT` (every IPv4 interface, as Go exporters accept).
/// Host names are refused: the listener must not depend on name resolution at start. Port 0
/// picks a free port (logged at start; tests use it).
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    let hint = "use IP:PORT, e.g. 0.0.0.0:9090, 127.0.0.1:9090, [::]:9090 or :9090";
    if let Some(port) = text.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .map_err(|_| format!("`{text}`: `{port}` is not a port number (0-65535); {hint}"));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not an IP address and port; {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports() {
        assert_eq!(parse("0.0.0.0:9090").unwrap().to_string(), "0.0.0.0:9090");
        assert_eq!(parse("127.0.0.1:0").unwrap().port(), 0);
        assert_eq!(parse("[::]:9090").unwrap().to_string(), "[::]:9090");
        assert_eq!(parse(":9090").unwrap().to_string(), "0.0.0.0:9090");
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (text, needle) in [
            ("localhost:9090", "not an IP address and port"),
            ("9090", "not an IP address and port"),
            ("0.0.0.0", "not an IP address and port"),
            ("0.0.0.0:99999", "not an IP address and port"),
            (":http", "`http` is not a port number"),
            ("", "not an IP address and port"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.contains(needle) && e.contains("e.g. 0.0.0.0:9090"),
                "{text}: {e}"
            );
        }
    }
}

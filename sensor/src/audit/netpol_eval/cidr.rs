//! CIDR blocks of `ipBlock` peers: parse (`10.0.0.0/8`, `fd00::/64`) and test membership.
//! Host bits after the prefix are ignored, as the API server's `net.ParseCIDR` does.

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `addr/prefix`; the message says what is wrong.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix length)"))?;
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?;
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is in the block. IPv4-mapped IPv6 addresses count as their IPv4 address;
    /// otherwise an IPv4 block never contains an IPv6 address and vice versa.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(n.to_bits()),
                u128::from(a.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(n.to_bits(), a.to_bits(), 128, self.prefix),
            _ => false,
        }
    }
}

/// The first `prefix` of `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let host_bits = bits - u32::from(prefix);
    host_bits >= bits || (a >> host_bits) == (b >> host_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3/32", "10.1.2.3", true),
            ("10.1.2.3/32", "10.1.2.4", false),
            ("10.1.2.3/24", "10.1.2.200", true), // host bits ignored
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("::/0", "fd00::1", true),
            ("fd00:231::/64", "fd00:231::5", true),
            ("fd00:231::/64", "fd00:232::5", false),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
        ];
        for (cidr, addr, want) in cases {
            assert_eq!(
                Cidr::parse(cidr).unwrap().contains(ip(addr)),
                want,
                "{cidr} contains {addr}"
            );
        }
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "nope/8",
            "10.0.0.0/x",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad} parsed");
        }
    }
}

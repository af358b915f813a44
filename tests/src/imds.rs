//! A stand-in for the cloud instance metadata service (IMDS, `169.254.169.254`), entirely inside
//! a test network namespace.
//!
//! Why: the sensor's `cloud-metadata-access` rule must be tested with a real connection to
//! `169.254.169.254:80`, and that connection must never reach the real metadata service of the
//! machine the tests run on (a cloud VM answers on that address with its credentials). So the
//! address belongs to a [`Peer`]'s network namespace only (on its loopback interface, with a TCP
//! server listening on it), and the containers that talk to it JOIN that namespace
//! (`Network::Join(imds.netns_path())`): their packets never enter the host's network stack.
//! The host's routes are not touched at all, so even a crash in the middle of a test cannot leave
//! a route behind, and a container left in the host namespace cannot reach it by mistake through
//! this code. [`ImdsPeer::new`] checks, before anything connects, that the namespace routes the
//! address locally; everything (server, veth, netns) is removed on drop, like any [`Peer`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use crate::netns::Peer;

/// The EC2 (and GCP, Azure) instance metadata address.
pub const IMDS_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The port the stand-in listens on.
pub const IMDS_PORT: u16 = 80;

/// A netns peer owning [`IMDS_V4`], with a TCP server on [`IMDS_PORT`]. See the module docs.
pub struct ImdsPeer {
    peer: Peer,
}

impl Default for ImdsPeer {
    fn default() -> Self {
        Self::new()
    }
}

impl ImdsPeer {
    pub fn new() -> ImdsPeer {
        let mut peer = Peer::new();
        peer.add_local_address(IpAddr::V4(IMDS_V4));
        let route = peer.route_get(IpAddr::V4(IMDS_V4));
        assert!(
            route.trim_start().starts_with("local 169.254.169.254"),
            "netns {} does not route {IMDS_V4} to itself: {route}",
            peer.netns()
        );
        peer.start_tcp_server_on(IpAddr::V4(IMDS_V4), IMDS_PORT);
        ImdsPeer { peer }
    }

    /// The namespace to join (`Network::Join`) to reach the stand-in.
    pub fn netns_path(&self) -> PathBuf {
        self.peer.netns_path()
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

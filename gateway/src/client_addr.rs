//! Who a client is: the connection's peer address, or the last `X-Forwarded-For` entry when
//! TRUST_FORWARDED_FOR says a proxy in front appends it; for every per-client cap and budget an
//! IPv6 client is its /64.
//!
//! What to set where the gateway runs:
//! - Directly exposed, or behind a NodePort or LoadBalancer Service: no header. Give the Service
//!   `externalTrafficPolicy: Local`, so kube-proxy hands the connection over with the client's own
//!   source address; with the default (`Cluster`) it rewrites the source to a node's address
//!   (SNAT) and every client shares one address budget.
//! - Behind an ingress controller or L7 proxy that appends the address it received the request
//!   from (ingress-nginx, Traefik, a cloud HTTP load balancer): `TRUST_FORWARDED_FOR=true`, and
//!   the gateway reachable only through that proxy (a NetworkPolicy admitting only the
//!   controller), or clients could write their own address. The controller's own Service needs
//!   `externalTrafficPolicy: Local` for the address it appends to be the client's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::ConnectInfo,
    http::{Extensions, HeaderMap},
};

/// Who a client is for a per-client cap or budget: an IPv4 address, or an IPv6 /64 (what one
/// subscriber is usually given, so one host cannot pass as millions of clients).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The last address of `X-Forwarded-For`: the one the proxy in front of us appended (earlier
/// ones are whatever the client claimed).
pub fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
}

/// The client of a request with `headers` and `extensions`: the last `X-Forwarded-For` entry
/// when `trust_forwarded_for`, else the connection's peer (unspecified when served without
/// connection info, as in-process tests are).
pub fn of_request(
    headers: &HeaderMap,
    extensions: &Extensions,
    trust_forwarded_for: bool,
) -> IpAddr {
    if trust_forwarded_for && let Some(ip) = forwarded_for(headers) {
        return ip;
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let one: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(one.into()), client_key(two.into()));
        assert_ne!(client_key(one.into()), client_key(other.into()));
        let mapped: Ipv6Addr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_key(mapped.into()),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    #[test]
    fn the_proxys_address_is_the_last_forwarded_one() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.2.3.4, 10.0.0.1".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some(A));
        h.append("x-forwarded-for", "garbage, 10.0.0.2".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some(B));
        assert_eq!(forwarded_for(&HeaderMap::new()), None);
    }
}

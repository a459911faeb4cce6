//! Which IP addresses count as public: the only ones `*` and `*.domain` in `allowed_hosts`
//! reach.
//!
//! Anything a node's own network can reach but the internet cannot is not public: loopback
//! (the node itself, its admin listener, a local database), private and unique-local ranges,
//! link-local (including cloud metadata services at 169.254.169.254), carrier-grade NAT,
//! unspecified, broadcast, multicast, documentation, benchmarking and reserved ranges, and
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) when the address
//! they carry is not public. An entry naming a host or address explicitly reaches it anyway:
//! the operator asked for it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True if `ip` is an address of the public internet.
pub(super) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let not_public = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // 0.0.0.0/8, "this network".
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT (shared address space).
        || (a == 100 && (b & 0xc0) == 64)
        // 192.0.0.0/24, IETF protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15, benchmarking.
        || (a == 198 && (b & 0xfe) == 18)
        // 240.0.0.0/4, reserved.
        || a >= 240;
    !not_public
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return false;
    }
    let segments = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d).
    if let Some(v4) = ip.to_ipv4() {
        return is_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48): the IPv4 address is the last
    // 32 bits.
    if segments[0] == 0x64 && segments[1] == 0xff9b {
        if segments[2] == 1 {
            return false;
        }
        return is_public_v4(v4_in(segments[6], segments[7]));
    }
    // 6to4 (2002::/16): the IPv4 address is bits 16..48.
    if segments[0] == 0x2002 {
        return is_public_v4(v4_in(segments[1], segments[2]));
    }
    let not_public = ip.is_unique_local()
        || ip.is_unicast_link_local()
        // fec0::/10, the deprecated site-local range.
        || (segments[0] & 0xffc0) == 0xfec0
        // 2001:db8::/32, documentation.
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // 2001::/32, Teredo: the IPv4 address inside is obfuscated, so it cannot be checked.
        || (segments[0] == 0x2001 && segments[1] == 0)
        // 100::/64, discard-only.
        || (segments[0] == 0x100 && segments[1..4] == [0, 0, 0]);
    !not_public
}

fn v4_in(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_and_other_local_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "100::1",
            // IPv4 addresses in IPv6 clothing.
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert!(!is_public(ip), "{address} counted as public");
        }
    }

    #[test]
    fn internet_addresses_are_public() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001:82b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert!(is_public(ip), "{address} counted as not public");
        }
    }
}

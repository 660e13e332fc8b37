//! The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its updates), with
//! the multicast and reserved blocks beside them: no address in them is a public server's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a row of the IPv6 table means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Never a public server's.
    Refuse,
    /// Reaches the IPv4 address held in bits `at..at + 32`, which the IPv4 table judges.
    Embeds { at: u32 },
}

use Rule::{Embeds, Refuse};

/// IPv4: network, prefix length, name in the registry. Every row is refused; an address is
/// named by the narrowest row that holds it.
#[rustfmt::skip]
pub(crate) const IPV4: [(Ipv4Addr, u8, &str); 19] = [
    (Ipv4Addr::new(0, 0, 0, 0),         8,  "\"This network\" (RFC 791)"),
    (Ipv4Addr::new(10, 0, 0, 0),        8,  "Private-Use (RFC 1918)"),
    (Ipv4Addr::new(100, 64, 0, 0),      10, "Shared Address Space (RFC 6598)"),
    (Ipv4Addr::new(127, 0, 0, 0),       8,  "Loopback (RFC 1122)"),
    (Ipv4Addr::new(169, 254, 0, 0),     16, "Link Local (RFC 3927)"),
    (Ipv4Addr::new(172, 16, 0, 0),      12, "Private-Use (RFC 1918)"),
    (Ipv4Addr::new(192, 0, 0, 0),       24, "IETF Protocol Assignments (RFC 6890)"),
    (Ipv4Addr::new(192, 0, 2, 0),       24, "Documentation, TEST-NET-1 (RFC 5737)"),
    (Ipv4Addr::new(192, 31, 196, 0),    24, "AS112-v4 (RFC 7535)"),
    (Ipv4Addr::new(192, 52, 193, 0),    24, "AMT (RFC 7450)"),
    (Ipv4Addr::new(192, 88, 99, 0),     24, "Deprecated 6to4 Relay Anycast (RFC 7526)"),
    (Ipv4Addr::new(192, 168, 0, 0),     16, "Private-Use (RFC 1918)"),
    (Ipv4Addr::new(192, 175, 48, 0),    24, "Direct Delegation AS112 Service (RFC 7534)"),
    (Ipv4Addr::new(198, 18, 0, 0),      15, "Benchmarking (RFC 2544)"),
    (Ipv4Addr::new(198, 51, 100, 0),    24, "Documentation, TEST-NET-2 (RFC 5737)"),
    (Ipv4Addr::new(203, 0, 113, 0),     24, "Documentation, TEST-NET-3 (RFC 5737)"),
    (Ipv4Addr::new(224, 0, 0, 0),       4,  "Multicast (RFC 5771)"),
    (Ipv4Addr::new(240, 0, 0, 0),       4,  "Reserved (RFC 1112)"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "Limited Broadcast (RFC 919)"),
];

/// IPv6: network, prefix length, name in the registry, rule. The first row that holds an
/// address decides, so the rows that embed an IPv4 address come before the last three, which
/// refuse everything outside global unicast.
#[rustfmt::skip]
pub(crate) const IPV6: [(Ipv6Addr, u8, &str, Rule); 20] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),                    128, "Unspecified (RFC 4291)", Refuse),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1),                    128, "Loopback (RFC 4291)", Refuse),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),               96,  "IPv4-mapped (RFC 4291)", Embeds { at: 96 }),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),                    96,  "IPv4-compatible, deprecated (RFC 4291)", Refuse),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),            96,  "IPv4-IPv6 Translation (RFC 6052)", Embeds { at: 96 }),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),            48,  "IPv4-IPv6 Translation, local use (RFC 8215)", Refuse),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),                64,  "Discard-Only (RFC 6666)", Refuse),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),               23,  "IETF Protocol Assignments, Teredo included (RFC 2928)", Refuse),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),           32,  "Documentation (RFC 3849)", Refuse),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),               16,  "6to4 (RFC 3056)", Embeds { at: 16 }),
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0),       48,  "Direct Delegation AS112 Service (RFC 7534)", Refuse),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),               20,  "Documentation (RFC 9637)", Refuse),
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),               16,  "Segment Routing SIDs (RFC 9602)", Refuse),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),               7,   "Unique-Local (RFC 4193)", Refuse),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),               10,  "Link-Local Unicast (RFC 4291)", Refuse),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),               10,  "Site-Local, deprecated (RFC 3879)", Refuse),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),               8,   "Multicast (RFC 4291)", Refuse),
    // Global unicast is 2000::/3 (RFC 4291 §2.4); the rest of the space is reserved.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),                    3,   "Not global unicast (RFC 4291)", Refuse),
    (Ipv6Addr::new(0x4000, 0, 0, 0, 0, 0, 0, 0),               2,   "Not global unicast (RFC 4291)", Refuse),
    (Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0),               1,   "Not global unicast (RFC 4291)", Refuse),
];

/// The address a request to `ip` reaches, when it is an ordinary one: `ip` itself, or the
/// IPv4 address it embeds (mapped, NAT64, 6to4). `None` for every special-purpose address.
pub(crate) fn reached(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => v4_row(v4).is_none().then_some(ip),
        IpAddr::V6(v6) => match v6_row(v6).map(|(_, _, _, rule)| rule) {
            None => Some(ip),
            Some(Refuse) => None,
            Some(Embeds { at }) => {
                let embedded = Ipv4Addr::from((u128::from(v6) >> (96 - at)) as u32);
                v4_row(embedded).is_none().then_some(IpAddr::V4(embedded))
            }
        },
    }
}

/// Whether `ip` is in a special-purpose block (or embeds an IPv4 address that is).
pub fn is_special_purpose(ip: IpAddr) -> bool {
    reached(ip).is_none()
}

/// The narrowest row of the IPv4 table that holds `ip`.
pub(crate) fn v4_row(ip: Ipv4Addr) -> Option<&'static (Ipv4Addr, u8, &'static str)> {
    let ip = u32::from(ip);
    IPV4.iter().filter(|(network, prefix, _)| ip & mask32(*prefix) == u32::from(*network)).max_by_key(|row| row.1)
}

/// The first row of the IPv6 table that holds `ip`.
pub(crate) fn v6_row(ip: Ipv6Addr) -> Option<&'static (Ipv6Addr, u8, &'static str, Rule)> {
    let ip = u128::from(ip);
    IPV6.iter().find(|(network, prefix, _, _)| ip & mask128(*prefix) == u128::from(*network))
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(ip: &str) -> Option<&'static str> {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => v4_row(v4).map(|row| row.2),
            IpAddr::V6(v6) => v6_row(v6).map(|row| row.2),
        }
    }

    fn special(ip: &str) -> bool {
        is_special_purpose(ip.parse().unwrap())
    }

    /// Each row: addresses inside it (its first and last when they are not another row's),
    /// and addresses just outside it, which are public unless a neighbouring row holds them.
    #[test]
    fn every_ipv4_range_holds_its_addresses_and_not_its_neighbours() {
        #[rustfmt::skip]
        let cases: [(&str, &[&str], &[&str]); 19] = [
            ("\"This network\"", &["0.0.0.0", "0.255.255.255"], &["1.0.0.0"]),
            ("Private-Use (RFC 1918)", &["10.0.0.0", "10.255.255.255"], &["9.255.255.255", "11.0.0.0"]),
            ("Shared Address Space", &["100.64.0.0", "100.127.255.255"], &["100.63.255.255", "100.128.0.0"]),
            ("Loopback", &["127.0.0.1", "127.255.255.255"], &["126.255.255.255", "128.0.0.0"]),
            ("Link Local", &["169.254.0.0", "169.254.169.254"], &["169.253.255.255", "169.255.0.0"]),
            ("Private-Use (RFC 1918)", &["172.16.0.0", "172.31.255.255"], &["172.15.255.255", "172.32.0.0"]),
            ("IETF Protocol Assignments", &["192.0.0.0", "192.0.0.255"], &["191.255.255.255", "192.0.1.0"]),
            ("TEST-NET-1", &["192.0.2.0", "192.0.2.255"], &["192.0.1.255", "192.0.3.0"]),
            ("AS112-v4", &["192.31.196.0", "192.31.196.255"], &["192.31.195.255", "192.31.197.0"]),
            ("AMT", &["192.52.193.0", "192.52.193.255"], &["192.52.192.255", "192.52.194.0"]),
            ("6to4 Relay Anycast", &["192.88.99.0", "192.88.99.255"], &["192.88.98.255", "192.88.100.0"]),
            ("Private-Use (RFC 1918)", &["192.168.0.0", "192.168.255.255"], &["192.167.255.255", "192.169.0.0"]),
            ("Direct Delegation AS112", &["192.175.48.0", "192.175.48.255"], &["192.175.47.255", "192.175.49.0"]),
            ("Benchmarking", &["198.18.0.0", "198.19.255.255"], &["198.17.255.255", "198.20.0.0"]),
            ("TEST-NET-2", &["198.51.100.0", "198.51.100.255"], &["198.51.99.255", "198.51.101.0"]),
            ("TEST-NET-3", &["203.0.113.0", "203.0.113.255"], &["203.0.112.255", "203.0.114.0"]),
            ("Multicast", &["224.0.0.0", "239.255.255.255"], &["223.255.255.255"]),
            ("Reserved", &["240.0.0.0", "255.255.255.254"], &[]),
            ("Limited Broadcast", &["255.255.255.255"], &[]),
        ];
        for (name, inside, outside) in cases {
            for ip in inside {
                assert!(name_of(ip).is_some_and(|n| n.contains(name)), "{ip} is in {name}: {:?}", name_of(ip));
                assert!(special(ip), "{ip}");
            }
            for ip in outside {
                assert_eq!(name_of(ip), None, "{ip}, just outside {name}");
                assert!(!special(ip), "{ip}");
            }
        }
    }

    #[test]
    fn every_ipv6_range_holds_its_addresses_and_not_its_neighbours() {
        /// A row's name, addresses inside it, and addresses just outside it with `None` for a
        /// public one or the row that holds it instead.
        type Case = (&'static str, &'static [&'static str], &'static [(&'static str, Option<&'static str>)]);
        #[rustfmt::skip]
        let cases: [Case; 17] = [
            ("Unspecified", &["::"], &[("::1", Some("Loopback"))]),
            ("Loopback", &["::1"], &[("::2", Some("IPv4-compatible"))]),
            ("IPv4-mapped", &["::ffff:0.0.0.0", "::ffff:255.255.255.255"],
                &[("::fffe:ffff:ffff", Some("Not global unicast")), ("::1:0:0:0", Some("Not global unicast"))]),
            ("IPv4-compatible", &["::0.0.0.2", "::8.8.8.8", "::255.255.255.255"],
                &[("::1:0:0", Some("Not global unicast"))]),
            ("IPv4-IPv6 Translation (RFC 6052)", &["64:ff9b::", "64:ff9b::ffff:ffff"],
                &[("64:ff9b::1:0:0", Some("Not global unicast"))]),
            ("local use", &["64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"],
                &[("64:ff9b:2::", Some("Not global unicast"))]),
            ("Discard-Only", &["100::", "100::ffff:ffff:ffff:ffff"], &[("100:0:0:1::", Some("Not global unicast"))]),
            ("IETF Protocol Assignments", &["2001::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:2::1", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None), ("2001:200::", None)]),
            ("Documentation (RFC 3849)", &["2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None), ("2001:db9::", None)]),
            ("6to4", &["2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None), ("2003::", None)]),
            ("Direct Delegation AS112", &["2620:4f:8000::", "2620:4f:8000:ffff:ffff:ffff:ffff:ffff"],
                &[("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", None), ("2620:4f:8001::", None)]),
            ("Documentation (RFC 9637)", &["3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None), ("3fff:1000::", None)]),
            ("Segment Routing", &["5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Not global unicast"))]),
            ("Unique-Local", &["fc00::", "fd12:3456::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Not global unicast")), ("fe00::", Some("Not global unicast"))]),
            ("Link-Local", &["fe80::", "fe80::1", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Not global unicast")), ("fec0::", Some("Site-Local"))]),
            ("Site-Local", &["fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("ff00::", Some("Multicast"))]),
            ("Multicast", &["ff00::", "ff02::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
                &[("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Site-Local"))]),
        ];
        for (name, inside, outside) in cases {
            for ip in inside {
                assert!(name_of(ip).is_some_and(|n| n.contains(name)), "{ip} is in {name}: {:?}", name_of(ip));
            }
            for (ip, instead) in outside {
                let row = name_of(ip);
                assert!(!row.is_some_and(|n| n.contains(name)), "{ip} is just outside {name}: {row:?}");
                match instead {
                    None => assert!(row.is_none() && !special(ip), "{ip} is public: {row:?}"),
                    Some(other) => assert!(row.is_some_and(|n| n.contains(other)), "{ip} is in {other}: {row:?}"),
                }
            }
        }
    }

    #[test]
    fn embedded_ipv4_addresses_are_judged_by_the_ipv4_table() {
        for (ip, public) in [
            ("::ffff:8.8.8.8", true),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("64:ff9b::8.8.8.8", true),
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::192.168.1.1", false),
            ("2002:808:808::1", true),
            ("2002:7f00:1::", false),
            ("2002:a00:1::", false),
            ("2002:c0a8:101:1::1", false),
            // Refused whatever they embed.
            ("::8.8.8.8", false),
            ("64:ff9b:1::8.8.8.8", false),
            ("2001:0:808:808::", false),
        ] {
            assert_eq!(!special(ip), public, "{ip}");
        }
        assert_eq!(reached("::ffff:8.8.8.8".parse().unwrap()), Some("8.8.8.8".parse().unwrap()));
        assert_eq!(reached("2002:808:808::1".parse().unwrap()), Some("8.8.8.8".parse().unwrap()));
        assert_eq!(reached("2606:4700::1111".parse().unwrap()), Some("2606:4700::1111".parse().unwrap()));
    }

    #[test]
    fn ordinary_addresses_are_public() {
        for ip in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001:80b::200e"] {
            assert!(!special(ip), "{ip}");
        }
    }

    #[test]
    fn every_row_is_a_network_address() {
        for (network, prefix, name) in IPV4 {
            assert_eq!(u32::from(network) & !mask32(prefix), 0, "{name}");
        }
        for (network, prefix, name, _) in IPV6 {
            assert_eq!(u128::from(network) & !mask128(prefix), 0, "{name}");
        }
    }
}

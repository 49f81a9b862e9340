//! Which addresses hookd may send webhooks to: a guard against server-side request forgery.
//!
//! Endpoint URLs are chosen by API users, so without a guard anyone who can create an
//! endpoint can make hookd send requests into the network it runs in: cloud metadata
//! services (169.254.169.254), databases and admin consoles on private or loopback
//! addresses. [`AddressPolicy::check`] refuses every address that is not global unicast,
//! unless the operator allowed its network with `allowed_networks` (for an internal
//! receiver, or 127.0.0.0/8 in tests). Addresses that embed an IPv4 address (IPv4-mapped,
//! IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address
//! they lead to, so `::ffff:127.0.0.1` is refused as loopback.
//!
//! The check must see the address actually connected to, after DNS: checking a host name
//! and then resolving it again invites DNS rebinding. So the check runs inside the HTTP
//! client's resolver, [`GuardedResolver`], which drops the refused addresses of a name.
//!
//! What the resolver does not see, and the sender must handle:
//! - **IP-literal URLs** (`http://10.0.0.1/`, and forms the URL parser normalises to one,
//!   such as `http://2130706433/`) never reach the client's resolver: the sender must call
//!   [`AddressPolicy::check_url_host`] on every URL before sending it.
//! - **Redirects**: each hop is a new URL. Do not follow redirects (webhook receivers answer
//!   the request; Svix does not follow them), or check every hop with `check_url_host`.
//! - **Proxies**: through a proxy only the proxy's name is resolved here, and the target is
//!   resolved by the proxy. The delivery client (`client`) uses none; a client that reads
//!   `HTTP_PROXY` from the environment would have the guard check the proxy instead.
//!
//! A refused connection fails with a [`Refusal`] in its error source chain, so the sender
//! can tell "the policy refused this endpoint" from a network failure and report it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Special-purpose IPv4 ranges that are never a webhook receiver, from the IANA IPv4
/// Special-Purpose Address Registry and RFC 6890. The first match gives the reason, so a
/// narrower range comes before a wider one that contains it.
const V4_REFUSED: &[(Ipv4Net, &str)] = &[
    (
        v4(0, 0, 0, 0, 8),
        "unspecified address, 'this network' 0.0.0.0/8",
    ),
    (v4(10, 0, 0, 0, 8), "private network, RFC 1918"),
    (
        v4(100, 64, 0, 0, 10),
        "carrier-grade NAT shared address space, RFC 6598",
    ),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (
        v4(169, 254, 0, 0, 16),
        "link-local, where cloud metadata services live",
    ),
    (v4(172, 16, 0, 0, 12), "private network, RFC 1918"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments, RFC 6890"),
    (v4(192, 0, 2, 0, 24), "documentation range, RFC 5737"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast, RFC 7526"),
    (v4(192, 168, 0, 0, 16), "private network, RFC 1918"),
    (v4(198, 18, 0, 0, 15), "benchmarking range, RFC 2544"),
    (v4(198, 51, 100, 0, 24), "documentation range, RFC 5737"),
    (v4(203, 0, 113, 0, 24), "documentation range, RFC 5737"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved, RFC 1112"),
];

/// Special-purpose IPv6 ranges, checked after the loopback and unspecified addresses and
/// after the forms that embed an IPv4 address (see [`embedded_ipv4`]).
const V6_REFUSED: &[(Ipv6Net, &str)] = &[
    (v6([0x0100, 0, 0, 0], 64), "discard-only range, RFC 6666"),
    (
        v6([0x0064, 0xff9b, 1, 0], 48),
        "local-use IPv4/IPv6 translation, RFC 8215",
    ),
    (v6([0x2001, 0, 0, 0], 32), "Teredo tunnelling, RFC 4380"),
    (
        v6([0x2001, 0x0002, 0, 0], 48),
        "benchmarking range, RFC 5180",
    ),
    (
        v6([0x2001, 0x0db8, 0, 0], 32),
        "documentation range, RFC 3849",
    ),
    (v6([0x3fff, 0, 0, 0], 20), "documentation range, RFC 9637"),
    (v6([0xfc00, 0, 0, 0], 7), "unique local address, RFC 4193"),
    (v6([0xfe80, 0, 0, 0], 10), "link-local"),
    (
        v6([0xfec0, 0, 0, 0], 10),
        "site-local, deprecated by RFC 3879",
    ),
    (v6([0xff00, 0, 0, 0], 8), "multicast"),
];

/// All global unicast IPv6 is allocated from 2000::/3; anything else left after the table
/// above is reserved by the IETF and not a place a receiver can be.
const V6_GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0], 3);

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(head: [u16; 4], prefix: u8) -> Ipv6Net {
    let [a, b, c, d] = head;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0), prefix)
}

/// Why an address may not be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refusing to connect to {addr} ({reason}); allow it with allowed_networks")]
pub struct Refusal {
    /// The address as resolved or written in the URL.
    pub addr: IpAddr,
    /// The special-purpose range it falls in, for people.
    pub reason: &'static str,
}

/// The addresses deliveries may go to: every global unicast address, plus the networks the
/// operator allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy that also permits the `allowed` networks, whatever range they are in.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Whether hookd may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        match refusal_reason(ip) {
            Some(reason) if !self.is_allowed(ip) => Err(Refusal { addr: ip, reason }),
            _ => Ok(()),
        }
    }

    /// [`check`](Self::check) for a URL whose host is an IP literal, which the client connects
    /// to without asking the resolver. Host names pass here: [`GuardedResolver`] checks the
    /// addresses they resolve to.
    pub fn check_url_host(&self, url: &Url) -> Result<(), Refusal> {
        match url.host() {
            Some(Host::Ipv4(ip)) => self.check(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check(IpAddr::V6(ip)),
            Some(Host::Domain(_)) | None => Ok(()),
        }
    }

    /// Inside an allowed network, as written or, for addresses that embed an IPv4 address,
    /// by that IPv4 address (allowing 127.0.0.0/8 also allows `::ffff:127.0.0.1`).
    fn is_allowed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

/// Parses `allowed_networks` entries: CIDR networks (`10.0.0.0/8`, `fd00::/8`) or bare
/// addresses, which become a /32 or /128. Host bits in a network are cleared.
pub fn parse_networks(items: &[String]) -> Result<Vec<IpNet>, String> {
    items
        .iter()
        .map(|item| {
            let text = item.trim();
            text.parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "{item:?} is neither an IP address nor a network in CIDR notation \
                         (like 10.0.0.0/8 or fd00::/8)"
                    )
                })
        })
        .collect()
}

/// The reason `ip` is refused when no allowed network covers it; `None` for global unicast.
fn refusal_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4_REFUSED
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, reason)| *reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return v4_reason(v4);
    }
    if let Some((_, reason)) = V6_REFUSED.iter().find(|(net, _)| net.contains(&ip)) {
        return Some(reason);
    }
    if !V6_GLOBAL_UNICAST.contains(&ip) {
        return Some("reserved IPv6 address space, outside global unicast 2000::/3");
    }
    None
}

/// The IPv4 address a packet to `ip` ends up at, for the forms that carry one in a fixed
/// place: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96` (but not `::` and `::1`),
/// NAT64 `64:ff9b::/96` (RFC 6052) and 6to4 `2002::/16` (RFC 3056, bits 16 to 48).
/// The local-use NAT64 prefix `64:ff9b:1::/48` is not here: where its IPv4 address sits
/// depends on the operator's prefix length, so it is refused as a whole.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let last_32_bits = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last_32_bits),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(last_32_bits),
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(last_32_bits),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// A DNS resolver that only returns addresses the [`AddressPolicy`] permits.
///
/// Of a name's addresses it keeps the permitted ones, so a name with one public and one
/// private address still works, over the public one. If every address is refused, the
/// lookup fails with the first [`Refusal`], found by walking the request error's source
/// chain. A DNS failure is the resolver's `io::Error`.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl GuardedResolver {
    /// The permitted addresses of `host` (port 0: the connector puts the URL's port, or
    /// the scheme's, on each), or the first [`Refusal`] if none is permitted.
    pub async fn lookup(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if resolved.is_empty() {
            let detail = format!("{host} resolved to no addresses");
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, detail).into());
        }
        Ok(keep_permitted(&self.policy, resolved)?)
    }
}

/// The permitted addresses of a non-empty lookup, in their order, or the first refusal if
/// there are none.
fn keep_permitted(
    policy: &AddressPolicy,
    resolved: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Refusal> {
    let mut first_refusal = None;
    let permitted: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| match policy.check(addr.ip()) {
            Ok(()) => true,
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
                false
            }
        })
        .collect();
    match first_refusal {
        Some(refusal) if permitted.is_empty() => Err(refusal),
        _ => Ok(permitted),
    }
}

#[cfg(test)]
mod tests;

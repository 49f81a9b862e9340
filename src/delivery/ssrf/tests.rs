//! Address tables and resolver behaviour of the SSRF guard.

use super::*;
use crate::delivery::client::{ClientError, DeliveryClient};

const LOOPBACK: &str = "loopback";
const PRIVATE: &str = "private network, RFC 1918";
const LINK_LOCAL: &str = "link-local, where cloud metadata services live";
const DOCS_V4: &str = "documentation range, RFC 5737";
const UNSPECIFIED_V4: &str = "unspecified address, 'this network' 0.0.0.0/8";
const RESERVED_V6: &str = "reserved IPv6 address space, outside global unicast 2000::/3";

/// Each address with the reason it is refused, or `None` when it is global unicast.
const V4_TABLE: &[(&str, Option<&str>)] = &[
    ("0.0.0.0", Some(UNSPECIFIED_V4)),
    ("0.1.2.3", Some(UNSPECIFIED_V4)),
    ("10.0.0.1", Some(PRIVATE)),
    ("10.255.255.255", Some(PRIVATE)),
    ("11.0.0.1", None),
    ("100.63.255.255", None),
    (
        "100.64.0.1",
        Some("carrier-grade NAT shared address space, RFC 6598"),
    ),
    (
        "100.127.255.254",
        Some("carrier-grade NAT shared address space, RFC 6598"),
    ),
    ("100.128.0.0", None),
    ("127.0.0.1", Some(LOOPBACK)),
    ("127.255.255.254", Some(LOOPBACK)),
    ("169.254.0.1", Some(LINK_LOCAL)),
    ("169.254.169.254", Some(LINK_LOCAL)),
    ("172.15.255.255", None),
    ("172.16.0.1", Some(PRIVATE)),
    ("172.31.255.255", Some(PRIVATE)),
    ("172.32.0.0", None),
    ("192.0.0.8", Some("IETF protocol assignments, RFC 6890")),
    ("192.0.2.1", Some(DOCS_V4)),
    ("192.0.3.1", None),
    ("192.88.99.1", Some("6to4 relay anycast, RFC 7526")),
    ("192.167.255.255", None),
    ("192.168.1.1", Some(PRIVATE)),
    ("198.17.255.255", None),
    ("198.18.0.1", Some("benchmarking range, RFC 2544")),
    ("198.19.255.255", Some("benchmarking range, RFC 2544")),
    ("198.20.0.0", None),
    ("198.51.100.7", Some(DOCS_V4)),
    ("203.0.113.9", Some(DOCS_V4)),
    ("224.0.0.1", Some("multicast")),
    ("239.255.255.250", Some("multicast")),
    ("240.0.0.1", Some("reserved, RFC 1112")),
    ("255.255.255.254", Some("reserved, RFC 1112")),
    ("255.255.255.255", Some("broadcast")),
    ("1.1.1.1", None),
    ("8.8.8.8", None),
    ("93.184.216.34", None),
    ("223.255.255.255", None),
];

const V6_TABLE: &[(&str, Option<&str>)] = &[
    ("::", Some("unspecified address")),
    ("::1", Some(LOOPBACK)),
    // IPv4-mapped, IPv4-compatible, NAT64 and 6to4: judged by the embedded IPv4 address.
    ("::ffff:127.0.0.1", Some(LOOPBACK)),
    ("::ffff:10.1.2.3", Some(PRIVATE)),
    ("::ffff:169.254.169.254", Some(LINK_LOCAL)),
    ("::ffff:8.8.8.8", None),
    ("::127.0.0.1", Some(LOOPBACK)),
    ("::0.0.0.2", Some(UNSPECIFIED_V4)),
    ("::8.8.8.8", None),
    ("64:ff9b::7f00:1", Some(LOOPBACK)),
    ("64:ff9b::a9fe:a9fe", Some(LINK_LOCAL)),
    ("64:ff9b::808:808", None),
    ("2002:7f00:0001::", Some(LOOPBACK)),
    ("2002:c0a8:0101::1", Some(PRIVATE)),
    ("2002:808:808::1", None),
    (
        "64:ff9b:1::1",
        Some("local-use IPv4/IPv6 translation, RFC 8215"),
    ),
    (
        "64:ff9b:1:ffff::808:808",
        Some("local-use IPv4/IPv6 translation, RFC 8215"),
    ),
    ("2001::1", Some("Teredo tunnelling, RFC 4380")),
    (
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        Some("Teredo tunnelling, RFC 4380"),
    ),
    ("2001:2::1", Some("benchmarking range, RFC 5180")),
    ("2001:db8::1", Some("documentation range, RFC 3849")),
    ("3fff::1", Some("documentation range, RFC 9637")),
    ("3fff:1000::1", None),
    ("fc00::1", Some("unique local address, RFC 4193")),
    ("fd12:3456::1", Some("unique local address, RFC 4193")),
    ("fe80::1", Some("link-local")),
    ("febf::1", Some("link-local")),
    ("fec0::1", Some("site-local, deprecated by RFC 3879")),
    ("ff02::1", Some("multicast")),
    ("ff05::1:3", Some("multicast")),
    ("100::1", Some("discard-only range, RFC 6666")),
    ("100:0:0:1::1", Some(RESERVED_V6)),
    ("::ffff:0:7f00:1", Some(RESERVED_V6)),
    ("4000::1", Some(RESERVED_V6)),
    ("2001:1::1", None),
    ("2003::1", None),
    ("2001:4860:4860::8888", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001::1", None),
];

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test addresses are valid")
}

fn policy(allowed: &[&str]) -> AddressPolicy {
    let items: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
    AddressPolicy::new(parse_networks(&items).expect("test networks are valid"))
}

fn assert_table(policy: &AddressPolicy, table: &[(&str, Option<&'static str>)]) {
    for &(text, expected) in table {
        let addr = ip(text);
        let got = policy.check(addr).err();
        assert_eq!(
            got,
            expected.map(|reason| Refusal { addr, reason }),
            "{text}"
        );
    }
}

#[test]
fn ipv4_table() {
    assert_table(&AddressPolicy::default(), V4_TABLE);
}

#[test]
fn ipv6_table() {
    assert_table(&AddressPolicy::default(), V6_TABLE);
}

#[test]
fn refusal_says_what_and_how_to_allow_it() {
    let refusal = AddressPolicy::default().check(ip("10.0.0.1")).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "refusing to connect to 10.0.0.1 (private network, RFC 1918); allow it with allowed_networks"
    );
}

proptest::proptest! {
    /// Every form that embeds an IPv4 address gets the verdict of that address.
    #[test]
    fn embedded_ipv4_gets_the_verdict_of_the_ipv4_address(bits in proptest::prelude::any::<u32>()) {
        let v4 = Ipv4Addr::from(bits);
        let [a, b, c, d] = v4.octets();
        let high = u16::from_be_bytes([a, b]);
        let low = u16::from_be_bytes([c, d]);
        let expected = AddressPolicy::default().check(IpAddr::V4(v4)).err().map(|r| r.reason);
        for v6 in [
            v4.to_ipv6_mapped(),
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low),
            Ipv6Addr::new(0x2002, high, low, 0, 0, 0, 0, 1),
        ] {
            let got = AddressPolicy::default().check(IpAddr::V6(v6)).err().map(|r| r.reason);
            proptest::prop_assert_eq!(got, expected, "{}", v6);
        }
    }
}

#[test]
fn an_allowed_network_permits_refused_addresses_inside_it_only() {
    let policy = policy(&["127.0.0.0/8", "10.1.0.0/16", "fd00::/8", "169.254.169.254"]);
    for allowed in [
        "127.0.0.1",
        "127.1.2.3",
        "10.1.2.3",
        "fd00::1",
        "169.254.169.254",
    ] {
        assert_eq!(policy.check(ip(allowed)), Ok(()), "{allowed}");
    }
    for refused in [
        "10.2.0.1",
        "fc00::1",
        "169.254.169.253",
        "::1",
        "192.168.0.1",
    ] {
        assert!(policy.check(ip(refused)).is_err(), "{refused}");
    }
    // Global addresses stay permitted whatever is allowed.
    assert_eq!(policy.check(ip("8.8.8.8")), Ok(()));
}

#[test]
fn an_allowed_ipv4_network_covers_the_ipv6_forms_that_embed_it() {
    let policy = policy(&["127.0.0.0/8"]);
    for embedded in [
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ] {
        assert_eq!(policy.check(ip(embedded)), Ok(()), "{embedded}");
    }
    assert!(policy.check(ip("::ffff:10.0.0.1")).is_err());
    // ::1 is IPv6 loopback, not an IPv4-compatible 0.0.0.1.
    assert!(self::policy(&["0.0.0.0/8"]).check(ip("::1")).is_err());
}

#[test]
fn an_allowed_ipv6_network_is_checked_as_written() {
    let policy = policy(&["64:ff9b::/96"]);
    assert_eq!(policy.check(ip("64:ff9b::a00:1")), Ok(()));
    assert!(policy.check(ip("::ffff:10.0.0.1")).is_err());
}

#[test]
fn parse_networks_takes_cidrs_and_bare_addresses() {
    let items = [
        "10.0.0.0/8",
        "127.0.0.1",
        "::1",
        "fd00::/8",
        " 192.168.1.0/24 ",
        "10.1.2.3/8",
    ];
    let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    let expected: Vec<IpNet> = [
        "10.0.0.0/8",
        "127.0.0.1/32",
        "::1/128",
        "fd00::/8",
        "192.168.1.0/24",
        "10.0.0.0/8",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(parse_networks(&items), Ok(expected));
    assert_eq!(parse_networks(&[]), Ok(vec![]));
}

#[test]
fn parse_networks_names_the_bad_item() {
    for bad in [
        "10.0.0.0/33",
        "fd00::/129",
        "localhost",
        "",
        "10.0.0/8",
        "1.2.3.4/-1",
        "*",
    ] {
        let items = vec!["127.0.0.0/8".to_owned(), bad.to_owned()];
        let err = parse_networks(&items).unwrap_err();
        assert!(err.starts_with(&format!("{bad:?} is neither")), "{err}");
    }
}

#[test]
fn ip_literal_urls_are_checked_including_normalised_forms() {
    let policy = AddressPolicy::default();
    let refused = [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/",
        "http://[::ffff:7f00:1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "https://169.254.169.254/latest/meta-data/",
    ];
    for url in refused {
        let url = Url::parse(url).unwrap();
        assert!(policy.check_url_host(&url).is_err(), "{url}");
    }
    for url in [
        "https://example.com/",
        "http://localhost/",
        "https://8.8.8.8/",
    ] {
        assert_eq!(
            policy.check_url_host(&Url::parse(url).unwrap()),
            Ok(()),
            "{url}"
        );
    }
}

#[test]
fn lookups_keep_permitted_addresses_in_order() {
    let addrs: Vec<SocketAddr> = [
        "10.0.0.1:0",
        "93.184.216.34:0",
        "[::1]:0",
        "[2606:4700::1]:0",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let kept = keep_permitted(&AddressPolicy::default(), addrs.clone()).unwrap();
    assert_eq!(kept, vec![addrs[1], addrs[3]]);

    let refused = keep_permitted(&AddressPolicy::default(), vec![addrs[2], addrs[0]]);
    assert_eq!(refused.unwrap_err().addr, ip("::1"));
}

/// The first `Refusal` in an error's source chain, as the sender will look for it.
fn find_refusal<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            return Some(refusal);
        }
        current = err.source();
    }
    None
}

async fn resolve(
    allowed: &[&str],
    name: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    GuardedResolver::new(Arc::new(policy(allowed)))
        .lookup(name)
        .await
}

#[tokio::test]
async fn the_resolver_refuses_localhost_unless_allowed() {
    let err = resolve(&[], "localhost").await.unwrap_err();
    let refusal = find_refusal(&*err).expect("the error is a refusal");
    assert_eq!(refusal.reason, LOOPBACK);

    let addrs = resolve(&["127.0.0.0/8"], "localhost").await.unwrap();
    assert!(addrs.iter().any(|a| a.ip() == ip("127.0.0.1")), "{addrs:?}");
    // ::1, if localhost has it, is not in 127.0.0.0/8 and so is dropped.
    assert!(addrs.iter().all(|a| a.ip().is_ipv4()), "{addrs:?}");
}

#[tokio::test]
async fn a_dns_failure_is_not_a_refusal() {
    // .invalid never resolves (RFC 6761), so no DNS server needs to answer.
    let err = resolve(&[], "no-such-host.invalid").await.unwrap_err();
    assert!(find_refusal(&*err).is_none(), "{err}");
}

fn client(allowed: &[&str]) -> DeliveryClient {
    DeliveryClient::new(Arc::new(policy(allowed)), std::time::Duration::from_secs(5))
}

/// POSTs an empty body to `url` with `client`, waiting at most five seconds.
async fn post(client: &DeliveryClient, url: &str) -> Result<u16, ClientError> {
    let url = Url::parse(url).unwrap();
    let timeout = std::time::Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + timeout;
    let response = client
        .post(
            &url,
            http::HeaderMap::new(),
            bytes::Bytes::new(),
            deadline,
            timeout,
        )
        .await?;
    Ok(response.status().as_u16())
}

/// Answers one request on 127.0.0.1 with 204, and returns its port.
async fn one_shot_receiver() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let response = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let _ = stream.write_all(response).await;
    });
    port
}

#[tokio::test]
async fn through_the_client_a_refusal_is_found_in_the_error_chain() {
    let port = one_shot_receiver().await;
    let url = format!("http://localhost:{port}/");
    let err = post(&client(&[]), &url).await.unwrap_err();
    let refusal = find_refusal(&err).expect("the request error holds the refusal");
    assert_eq!(refusal.addr, ip("127.0.0.1"));

    // Allowed, the name's address gets the URL's port.
    let status = post(&client(&["127.0.0.0/8"]), &url).await.unwrap();
    assert_eq!(status, 204);
}

/// Why the sender must call `check_url_host`: the client connects to IP literals without
/// asking the resolver, so the guard never sees them.
#[tokio::test]
async fn ip_literals_bypass_the_resolver() {
    let port = one_shot_receiver().await;
    let status = post(&client(&[]), &format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(status, 204);
}

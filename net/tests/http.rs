//! HTTP over the stack against the test network's HTTP server (a smoltcp TCP server on
//! 10.0.2.2:80 serving the world's files): whole files byte-exact, 404s as errors, a
//! connection reset mid-file resumed with `Range`, a destination too small refused; and
//! [`Stack::http_fetch`] above it: keep-alive, redirects, retries with resume or restart,
//! stalls and slow-loris servers bounded, DNS, `HEAD`, Ctrl-C.

use kexboot_net::http::{HttpError, Url};
use kexboot_net::{HttpEvent, HttpFetch, HttpFetched, HttpGet, NetError, Stack};
use kexboot_testnet::{random_file, Network, World, SERVER_IP};

fn up(world: World) -> (Network, Stack<kexboot_testnet::TestNic>) {
    let mut net = Network::with_world(world);
    let nic = std::mem::replace(
        &mut net.nic,
        kexboot_testnet::TestNic {
            world: net.world.clone(),
        },
    );
    let mut stack = Stack::new(nic, net.platform.now.get());
    stack.dhcp(&mut net.platform, 10_000_000).expect("lease");
    (net, stack)
}

fn get(
    net: &mut Network,
    stack: &mut Stack<kexboot_testnet::TestNic>,
    path: &str,
    from: u64,
    dest: &mut [u8],
) -> (Result<kexboot_net::HttpGot, NetError>, u64) {
    let url = Url::parse(&format!("http://10.0.2.2{path}")).unwrap();
    let req = HttpGet {
        server: SERVER_IP,
        url: &url,
        from,
        idle_us: 5_000_000,
        head_only: false,
        end_us: u64::MAX,
        if_range: None,
        total: None,
    };
    let mut partial = from;
    let r = stack.http_get(&mut net.platform, &req, dest, &mut partial, &mut |_, _| {});
    (r, partial)
}

#[test]
fn whole_file_byte_exact() {
    for (seed, loss) in [(1, 0.0), (2, 0.05)] {
        let mut w = World::new(seed, loss, 0.0, false);
        let file = random_file(300_000, seed);
        w.add_file("boot/vmlinuz", &file);
        let (mut net, mut stack) = up(w);
        let mut dest = vec![0u8; 400_000];
        let (r, _) = get(&mut net, &mut stack, "/boot/vmlinuz", 0, &mut dest);
        let got = r.unwrap_or_else(|e| panic!("loss {loss}: {e}"));
        assert_eq!(
            (got.head.code, got.start, got.written),
            (200, 0, file.len() as u64)
        );
        assert_eq!(&dest[..file.len()], &file[..]);
    }
}

#[test]
fn not_found_is_the_answer() {
    let mut w = World::new(3, 0.0, 0.0, false);
    w.add_file("a", b"x");
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 16];
    let (r, _) = get(&mut net, &mut stack, "/missing", 0, &mut dest);
    let got = r.unwrap();
    assert_eq!((got.head.code, got.written), (404, 0));
}

#[test]
fn reset_mid_file_then_range_resumes_byte_exact() {
    let mut w = World::new(4, 0.0, 0.0, false);
    let file = random_file(200_000, 4);
    w.add_file("k", &file);
    w.http.reset_after = vec![70_000];
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 200_000];
    let (r, partial) = get(&mut net, &mut stack, "/k", 0, &mut dest);
    assert!(
        matches!(r, Err(NetError::Http(HttpError::Truncated { .. }))),
        "{r:?}"
    );
    assert!(partial > 0 && partial <= 70_000, "{partial}");
    let (r, _) = get(&mut net, &mut stack, "/k", partial, &mut dest);
    let got = r.unwrap();
    assert_eq!((got.head.code, got.start), (206, partial));
    assert_eq!(got.start + got.written, file.len() as u64);
    assert_eq!(dest, file);
    let w = net.world.borrow();
    assert_eq!(
        w.http.requests,
        [("k".to_string(), 0), ("k".to_string(), partial)]
    );
    assert_eq!(w.http.resets, 1);
}

#[test]
fn a_file_larger_than_the_destination_is_refused_before_writing() {
    let mut w = World::new(5, 0.0, 0.0, false);
    w.add_file("big", &random_file(5000, 5));
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0xeeu8; 4000];
    let (r, _) = get(&mut net, &mut stack, "/big", 0, &mut dest);
    assert!(
        matches!(
            r,
            Err(NetError::Http(HttpError::TooLarge {
                size: 5000,
                room: 4000
            }))
        ),
        "{r:?}"
    );
    assert!(dest.iter().all(|&b| b == 0xee), "nothing written");
}

type TestStack = Stack<kexboot_testnet::TestNic>;

/// `http_fetch` of `url` with a 2 s idle limit, 30 s overall, 4 retries; the retries seen.
fn fetch(
    net: &mut Network,
    stack: &mut TestStack,
    url: &str,
    dest: &mut [u8],
) -> (Result<HttpFetched, NetError>, Vec<String>) {
    fetch_with(net, stack, url, dest, 2_000_000, 30_000_000, false)
}

fn fetch_with(
    net: &mut Network,
    stack: &mut TestStack,
    url: &str,
    dest: &mut [u8],
    idle_us: u64,
    limit_us: u64,
    head_only: bool,
) -> (Result<HttpFetched, NetError>, Vec<String>) {
    let url = Url::parse(url).unwrap();
    let f = HttpFetch {
        url: &url,
        idle_us,
        limit_us,
        retries: 4,
        head_only,
    };
    let mut seen = vec![];
    let r = stack.http_fetch(&mut net.platform, &f, dest, &mut |e| match e {
        HttpEvent::Retry { error, from, .. } => seen.push(format!("retry from {from}: {error}")),
        HttpEvent::Redirect { to } => seen.push(format!("redirect {to}")),
        HttpEvent::Progress { .. } => {}
    });
    (r, seen)
}

#[test]
fn config_kernel_and_initrd_share_one_connection() {
    let mut w = World::new(6, 0.02, 0.0, false);
    let files = [
        ("pxelinux.cfg/default", random_file(700, 61)),
        ("vmlinuz", random_file(250_000, 62)),
        ("initrd.img", random_file(400_000, 63)),
    ];
    for (n, f) in &files {
        w.add_file(n, f);
    }
    let (mut net, mut stack) = up(w);
    // A 404 on the way (its page read and dropped) does not cost the connection.
    let mut dest = vec![0u8; 500_000];
    let (r, _) = fetch(
        &mut net,
        &mut stack,
        "http://10.0.2.2/pxelinux.cfg/01-x",
        &mut dest,
    );
    assert!(
        matches!(&r, Err(NetError::Http(HttpError::Status { code: 404, .. }))),
        "{r:?}"
    );
    for (n, f) in &files {
        let (r, seen) = fetch(
            &mut net,
            &mut stack,
            &format!("http://10.0.2.2/{n}"),
            &mut dest,
        );
        let got = r.unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(
            (got.size, got.length),
            (f.len() as u64, Some(f.len() as u64))
        );
        assert_eq!(&dest[..f.len()], &f[..], "{n}");
        assert!(seen.is_empty(), "{seen:?}");
    }
    assert_eq!(stack.http_connections(), 1);
    assert_eq!(net.world.borrow().http.connections, 1);
    assert_eq!(net.world.borrow().http.requests.len(), 4);
}

#[test]
fn a_server_that_closes_each_connection_is_followed() {
    let mut w = World::new(7, 0.0, 0.0, false);
    w.http.close_each = true;
    let a = random_file(30_000, 71);
    w.add_file("a", &a);
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 40_000];
    for _ in 0..3 {
        let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/a", &mut dest);
        assert_eq!(r.unwrap().size, a.len() as u64);
        assert!(seen.is_empty(), "{seen:?}");
    }
    assert_eq!(net.world.borrow().http.connections, 3);
}

#[test]
fn a_reset_mid_file_resumes_with_range_byte_exact() {
    let mut w = World::new(8, 0.03, 0.0, false);
    let file = random_file(300_000, 8);
    w.add_file("k", &file);
    w.http.reset_after = vec![90_000, 40_000];
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 300_000];
    let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    let got = r.unwrap();
    assert_eq!((got.size, got.retries, got.restarted), (300_000, 2, false));
    assert_eq!(dest, file);
    let w = net.world.borrow();
    let starts: Vec<u64> = w.http.requests.iter().map(|r| r.1).collect();
    assert_eq!(starts.len(), 3, "{seen:?}");
    assert!(
        starts[0] == 0 && starts[1] > 0 && starts[2] > starts[1],
        "{starts:?}"
    );
    assert_eq!(w.http.resets, 2);
}

#[test]
fn a_server_without_ranges_is_fetched_again_from_the_start() {
    let mut w = World::new(9, 0.0, 0.0, false);
    let file = random_file(200_000, 9);
    w.add_file("k", &file);
    w.http.no_ranges = true;
    w.http.reset_after = vec![120_000];
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 200_000];
    let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    let got = r.unwrap();
    assert_eq!((got.size, got.retries, got.restarted), (200_000, 1, true));
    assert_eq!(dest, file);
}

#[test]
fn a_stalled_server_times_out_and_the_rest_comes_by_range() {
    let mut w = World::new(10, 0.0, 0.0, false);
    let file = random_file(150_000, 10);
    w.add_file("k", &file);
    w.http.stall_after = vec![60_000];
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 150_000];
    let t0 = net.platform.now.get();
    let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    let got = r.unwrap();
    assert_eq!((got.size, got.retries), (150_000, 1));
    assert_eq!(dest, file);
    assert!(seen[0].contains("no HTTP answer after 2 s"), "{seen:?}");
    // The 2 s silence and the first backoff, not more.
    assert!(net.platform.now.get() - t0 < 4_000_000);
}

#[test]
fn a_slow_loris_server_cannot_hold_the_boot_past_the_limit() {
    let mut w = World::new(11, 0.0, 0.0, false);
    w.add_file("k", &random_file(10_000, 11));
    // One byte every 0.5 s: never silent for the 2 s idle limit.
    w.http.drip_us = Some(500_000);
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 10_000];
    let t0 = net.platform.now.get();
    let (r, _) = fetch_with(
        &mut net,
        &mut stack,
        "http://10.0.2.2/k",
        &mut dest,
        2_000_000,
        10_000_000,
        false,
    );
    assert!(
        matches!(
            r,
            Err(NetError::Timeout {
                what: "complete HTTP download",
                after_us: 10_000_000
            })
        ),
        "{r:?}"
    );
    let took = net.platform.now.get() - t0;
    assert!((10_000_000..10_500_000).contains(&took), "{took}");
}

#[test]
fn redirects_are_followed_and_loops_refused() {
    let mut w = World::new(12, 0.0, 0.0, false);
    let file = random_file(20_000, 12);
    w.add_file("new/k", &file);
    w.http.redirects.insert("old/k".into(), "/new/k".into());
    w.http
        .redirects
        .insert("abs".into(), "http://10.0.2.2/old/k".into());
    w.http.redirects.insert("loop1".into(), "loop2".into());
    w.http.redirects.insert("loop2".into(), "/loop1".into());
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 20_000];
    let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/abs", &mut dest);
    let got = r.unwrap();
    assert_eq!((got.redirects, got.url.path.as_str()), (2, "/new/k"));
    assert_eq!(dest, file);
    assert_eq!(
        seen,
        [
            "redirect http://10.0.2.2/old/k",
            "redirect http://10.0.2.2/new/k"
        ]
    );
    let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/loop1", &mut dest);
    assert_eq!(r, Err(NetError::Http(HttpError::TooManyRedirects)));
}

#[test]
fn server_errors_are_retried_client_errors_are_not() {
    let mut w = World::new(13, 0.0, 0.0, false);
    let file = random_file(5_000, 13);
    w.add_file("k", &file);
    w.http.status_once = vec![("k".into(), 503), ("k".into(), 502), ("k".into(), 403)];
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 5_000];
    let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].ends_with("503 Status 503"), "{seen:?}");
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "403 Status 403");
    let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    assert_eq!(r.unwrap().size, 5_000);
    assert_eq!(dest, file);
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    let w = World::new(14, 0.0, 0.0, false);
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 16];
    let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2:8080/k", &mut dest);
    assert_eq!(r, Err(NetError::Http(HttpError::Refused)));
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter().all(|s| s.ends_with("connection refused")),
        "{seen:?}"
    );
}

#[test]
fn host_names_resolve_by_the_leases_dns_server_once() {
    let mut w = World::new(15, 0.0, 0.0, false);
    let file = random_file(9_000, 15);
    w.add_file("k", &file);
    w.dns_names.insert("boot.example".into(), SERVER_IP);
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 9_000];
    for _ in 0..2 {
        let (r, _) = fetch(&mut net, &mut stack, "http://boot.example/k", &mut dest);
        let got = r.unwrap();
        assert_eq!((got.server, got.size), (SERVER_IP, 9_000));
    }
    assert_eq!(dest, file);
    assert_eq!(net.world.borrow().dns_queries, 1);
    let (r, _) = fetch(&mut net, &mut stack, "http://nowhere.example/k", &mut dest);
    assert!(
        matches!(&r, Err(NetError::Http(HttpError::NoHost(w))) if w.starts_with("nowhere.example")),
        "{r:?}"
    );
}

#[test]
fn head_tells_the_size_without_the_body() {
    let mut w = World::new(16, 0.0, 0.0, false);
    w.add_file("k", &random_file(123_456, 16));
    let (mut net, mut stack) = up(w);
    let mut dest = [0u8; 0];
    let (r, _) = fetch_with(
        &mut net,
        &mut stack,
        "http://10.0.2.2/k",
        &mut dest,
        2_000_000,
        10_000_000,
        true,
    );
    let got = r.unwrap();
    assert_eq!((got.size, got.length), (0, Some(123_456)));
    // The GET after it uses the same connection.
    let mut dest = vec![0u8; 123_456];
    let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    assert_eq!(r.unwrap().size, 123_456);
    let w = net.world.borrow();
    assert_eq!((w.http.heads, w.http.connections), (1, 1));
}

#[test]
fn ctrl_c_stops_a_download() {
    let mut w = World::new(17, 0.0, 0.0, false);
    w.add_file("k", &random_file(100_000, 17));
    w.http.stall_after = vec![10_000];
    let (mut net, mut stack) = up(w);
    net.platform.interrupt_at = Some(net.platform.now.get() + 1_000_000);
    let mut dest = vec![0u8; 100_000];
    let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    assert_eq!(r, Err(NetError::Interrupted));
}

#[test]
fn dhcp_says_httpclient_when_asked_to_http_boot() {
    let w = World::new(18, 0.0, 0.0, false);
    let (mut net, mut stack) = up(w);
    assert!(net.world.borrow().vendor_class.starts_with(b"PXEClient:"));
    stack.set_http_client(true);
    stack.dhcp(&mut net.platform, 10_000_000).expect("lease");
    assert_eq!(
        net.world.borrow().vendor_class,
        b"HTTPClient:Arch:00022:UNDI:003000"
    );
}

#[test]
fn bytes_past_the_announced_length_are_never_written() {
    let mut w = World::new(19, 0.0, 0.0, false);
    let file = random_file(50_000, 19);
    w.add_file("k", &file);
    w.http.trailing = vec![0x5a; 3000];
    let (mut net, mut stack) = up(w);
    for _ in 0..2 {
        let mut dest = vec![0xeeu8; 60_000];
        let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
        assert_eq!(r.unwrap().size, 50_000);
        assert_eq!(&dest[..50_000], &file[..]);
        assert!(
            dest[50_000..].iter().all(|&b| b == 0xee),
            "nothing past the body"
        );
    }
    // The connection that carried the extra bytes is not used again.
    assert_eq!(stack.http_connections(), 2);
}

#[test]
fn a_server_that_sends_short_parts_is_asked_for_the_rest() {
    let mut w = World::new(20, 0.0, 0.0, false);
    let file = random_file(200_000, 20);
    w.add_file("k", &file);
    w.http.reset_after = vec![50_000];
    w.http.short_ranges = Some(30_000);
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 200_000];
    let (r, _) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    // 50 000 + 30 000 + 30 000: one reset and two short parts, the third part's retry.
    let got = r.unwrap();
    assert_eq!(got.size, 200_000);
    assert_eq!(dest, file);
    let starts: Vec<u64> = net
        .world
        .borrow()
        .http
        .requests
        .iter()
        .map(|r| r.1)
        .collect();
    assert!(
        starts.len() >= 3 && starts.windows(2).all(|w| w[1] > w[0]),
        "{starts:?}"
    );
}

#[test]
fn a_file_replaced_mid_download_comes_again_whole() {
    for no_etag in [false, true] {
        let mut w = World::new(21, 0.0, 0.0, false);
        let old = random_file(120_000, 21);
        let new = random_file(150_000, 22);
        w.add_file("k", &old);
        w.http.reset_after = vec![40_000];
        w.http.replacement = Some(("k".into(), new.clone()));
        w.http.no_etag = no_etag;
        let (mut net, mut stack) = up(w);
        let mut dest = vec![0u8; 200_000];
        let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
        let got = r.unwrap_or_else(|e| panic!("no_etag {no_etag}: {e} {seen:?}"));
        assert_eq!(got.size, 150_000, "no_etag {no_etag}");
        assert_eq!(
            &dest[..150_000],
            &new[..],
            "no_etag {no_etag}: no splice of two versions"
        );
        if no_etag {
            assert!(
                seen.iter().any(|s| s.contains("the file changed")),
                "{seen:?}"
            );
        } else {
            assert!(
                got.restarted,
                "If-Range with the old tag: the new file whole"
            );
        }
    }
}

#[test]
fn a_body_cut_by_a_reset_is_not_taken_for_its_end() {
    let mut w = World::new(23, 0.0, 0.0, false);
    let file = random_file(90_000, 23);
    w.add_file("k", &file);
    w.http.no_length = true;
    w.http.reset_after = vec![30_000];
    let (mut net, mut stack) = up(w);
    let mut dest = vec![0u8; 100_000];
    let (r, seen) = fetch(&mut net, &mut stack, "http://10.0.2.2/k", &mut dest);
    let got = r.unwrap();
    assert_eq!(got.size, 90_000, "{seen:?}");
    assert_eq!(&dest[..90_000], &file[..]);
    assert_eq!(got.retries, 1);
}

#[test]
fn a_silent_dns_server_gives_way_to_the_next() {
    let mut w = World::new(24, 0.0, 0.0, false);
    w.add_file("k", b"hello");
    w.dns_names.insert("boot.example".into(), SERVER_IP);
    let (mut net, mut stack) = up(w);
    // 10.0.2.5 answers nothing; 10.0.2.3 is the world's DNS server.
    stack.set_dns(&["10.0.2.5".parse().unwrap(), "10.0.2.3".parse().unwrap()]);
    let mut dest = vec![0u8; 5];
    let (r, _) = fetch(&mut net, &mut stack, "http://boot.example/k", &mut dest);
    assert_eq!(r.unwrap().size, 5);
    assert_eq!(&dest, b"hello");
}

//! HTTP over the stack against the test network's HTTP server (a smoltcp TCP server on
//! 10.0.2.2:80 serving the world's files): whole files byte-exact, 404s as errors, a
//! connection reset mid-file resumed with `Range`, a destination too small refused.

use kexboot_net::http::{HttpError, Url};
use kexboot_net::{HttpGet, NetError, Stack};
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
    };
    let mut partial = from;
    let r = stack.http_get(&mut net.platform, &req, dest, &mut partial, &mut |_| {});
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

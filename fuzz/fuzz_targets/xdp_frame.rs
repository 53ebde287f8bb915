//! Ethernet / VLAN / IPv4 / IPv6 / UDP frames as an AF_XDP queue worker
//! receives them from the wire (tracker-user `xdp::frame`).
//!
//! Beyond "no panic": the payload of an accepted frame lies inside the
//! frame after the headers; the reply built from its path carries the same
//! payload back with addresses, ports, MACs and VLAN tags swapped, and is a
//! frame the parser itself accepts unless its source is one the parser
//! refuses on purpose (a loopback address or a group MAC).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_user::xdp::frame::{parse_udp_frame, write_reply_frame, FrameError, MAX_IP_PACKET};

fuzz_target!(|frame: &[u8]| {
    let Ok(parsed) = parse_udp_frame(frame) else {
        return;
    };
    let path = parsed.path;
    let payload = parsed.payload;
    let headers = path
        .header_len()
        .expect("accepted frame has a consistent path");
    let start = payload.as_ptr() as usize - frame.as_ptr() as usize;
    assert!(
        start >= headers,
        "payload at {start} inside {headers} header bytes"
    );
    assert!(start + payload.len() <= frame.len());
    assert!(usize::from(path.vlan_count) <= 2);
    assert_eq!(path.vlan_tags().len(), usize::from(path.vlan_count));
    assert_ne!(path.client.port(), 0);
    assert_ne!(path.local.port(), 0);

    let mut out = vec![0u8; headers + payload.len()];
    let written = write_reply_frame(&path, &mut out, |area| {
        area.get_mut(..payload.len())?.copy_from_slice(payload);
        Some(payload.len())
    });
    let l2 = headers - 8 - if path.client.is_ipv4() { 20 } else { 40 };
    if payload.len() + headers - l2 > MAX_IP_PACKET {
        assert_eq!(written, None, "reply beyond the IP packet cap");
        return;
    }
    assert_eq!(written, Some(out.len()));
    match parse_udp_frame(&out) {
        Ok(reply) => {
            assert_eq!(reply.payload, payload);
            assert_eq!(reply.path.client, path.local);
            assert_eq!(reply.path.local, path.client);
            assert_eq!(reply.path.client_mac, path.local_mac);
            assert_eq!(reply.path.local_mac, path.client_mac);
            assert_eq!(reply.path.vlan_tags(), path.vlan_tags());
        }
        Err(FrameError::BadAddress) => assert!(
            path.local.ip().is_loopback() || path.local_mac[0] & 1 != 0,
            "reply from {} ({:02x?}) refused",
            path.local,
            path.local_mac
        ),
        Err(e) => panic!("our own reply does not parse: {e}"),
    }
});

//! Cross-check of the WebTorrent binary strings against JavaScript itself:
//! Node must read every byte value out of our messages exactly as the
//! reference client (`Buffer.from(s, 'binary')`) would, see them as what its
//! own `JSON.stringify` writes, and its messages must parse here to the same
//! bytes. Node is required (it is on the build machines and in CI); a
//! missing `node` fails the test rather than skipping it.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use tracker_proto::ws::*;
use tracker_proto::{InfoHash, PeerId};

/// 13 ids holding all 256 byte values between them.
fn ids() -> Vec<[u8; 20]> {
    (0..13usize)
        .map(|i| core::array::from_fn(|j| ((i * 20 + j) % 256) as u8))
        .collect()
}

const SCRIPT: &str = r#"
const lines = require('fs').readFileSync(0, 'utf8').split('\n').filter(l => l.length > 0);
const hex = s => Buffer.from(s, 'binary').toString('hex');
const results = lines.map(line => {
  const m = JSON.parse(line);
  return {
    // Byte-identical to what JSON.stringify writes for the same object.
    same: JSON.stringify(m) === line,
    action: m.action,
    info_hash: m.info_hash === undefined ? null : hex(m.info_hash),
    peer_id: m.peer_id === undefined ? null : hex(m.peer_id),
    offer_id: m.offer_id === undefined ? null : hex(m.offer_id),
    sdp: m.offer ? m.offer.sdp : null,
    files: m.files ? Object.keys(m.files).map(hex) : null,
    reason: m['failure reason'] === undefined ? null : m['failure reason'],
  };
});
// Messages as the reference client builds them, one per id.
const ids = process.argv.slice(1);
const clientMsgs = ids.map((h, i) => JSON.stringify(Object.assign(
  {numwant: 5, uploaded: 0, downloaded: 0, left: null, event: 'started'},
  {action: 'announce', info_hash: Buffer.from(h, 'hex').toString('binary'),
   peer_id: Buffer.from(ids[(i + 1) % ids.length], 'hex').toString('binary')},
  {offers: [{offer: {type: 'offer', sdp: 'v=0\r\n"é"\u2028'}, offer_id: Buffer.from(h, 'hex').toString('binary')}]})));
process.stdout.write(JSON.stringify({results, clientMsgs}));
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn node_reads_and_writes_binary_strings_like_us() {
    let ids = ids();
    let mut input = Vec::new();
    let sdp = serde_json::value::RawValue::from_string(
        serde_json::json!({"type": "offer", "sdp": "v=0\r\n\"q\" \\ é ✓\u{7f}"}).to_string(),
    )
    .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let other = ids[(i + 1) % ids.len()];
        let offer_id = OfferId::from_binary(&other);
        write_offer(
            &mut input,
            &RelayedOffer {
                info_hash: InfoHash(*id),
                peer_id: PeerId(other),
                offer_id: &offer_id,
                offer: &sdp,
            },
        );
        input.push(b'\n');
        write_announce_response(
            &mut input,
            &AnnounceResponse {
                info_hash: InfoHash(*id),
                interval: 120,
                complete: 1,
                incomplete: 2,
                warning_message: Some("\u{0}\u{1f}\"\\ é"),
            },
        );
        input.push(b'\n');
        write_failure(
            &mut input,
            "bad \"thing\"\n",
            Some(Action::Announce),
            Some(InfoHash(*id)),
        );
        input.push(b'\n');
    }
    write_scrape_response(
        &mut input,
        ids.iter().map(|&h| ScrapeFile {
            info_hash: InfoHash(h),
            complete: 1,
            downloaded: 2,
            incomplete: 3,
        }),
    );
    input.push(b'\n');

    let mut child = Command::new("node")
        .arg("-e")
        .arg(SCRIPT)
        .args(ids.iter().map(|id| hex(id)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node must be installed to run this test");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "node failed");
    let v: Value = serde_json::from_slice(&output.stdout).unwrap();

    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), ids.len() * 3 + 1);
    for (i, id) in ids.iter().enumerate() {
        let other = hex(&ids[(i + 1) % ids.len()]);
        let [offer, response, failure] = &results[3 * i..3 * i + 3] else {
            unreachable!()
        };
        for r in [offer, response, failure] {
            assert_eq!(r["same"], true, "{r}");
            assert_eq!(r["action"], "announce");
            assert_eq!(r["info_hash"], hex(id));
        }
        assert_eq!(offer["peer_id"], other);
        assert_eq!(offer["offer_id"], other);
        assert_eq!(offer["sdp"], "v=0\r\n\"q\" \\ é ✓\u{7f}");
        assert_eq!(failure["reason"], "bad \"thing\"\n");
    }
    let scrape = results.last().unwrap();
    assert_eq!(scrape["same"], true);
    let files: Vec<String> = ids.iter().map(|id| hex(id)).collect();
    assert_eq!(scrape["files"], serde_json::json!(files));

    let client = v["clientMsgs"].as_array().unwrap();
    assert_eq!(client.len(), ids.len());
    for (i, msg) in client.iter().enumerate() {
        let msg = msg.as_str().unwrap();
        let Ok(InMessage::Announce(a)) = InMessage::parse(msg) else {
            panic!("{msg}")
        };
        assert_eq!(a.info_hash, InfoHash(ids[i]));
        assert_eq!(a.peer_id, PeerId(ids[(i + 1) % ids.len()]));
        assert_eq!(a.offers.len(), 1);
        assert_eq!(a.offers[0].offer_id.to_binary().unwrap(), ids[i]);
        assert_eq!(
            a.offers[0].offer.get(),
            "{\"type\":\"offer\",\"sdp\":\"v=0\\r\\n\\\"é\\\"\u{2028}\"}"
        );
        // Written back, the message is what Node wrote.
        let mut out = Vec::new();
        write_announce_request(&mut out, &a);
        let ours: Value = serde_json::from_slice(&out).unwrap();
        let theirs: Value = serde_json::from_str(msg).unwrap();
        assert_eq!(ours, theirs);
    }
}

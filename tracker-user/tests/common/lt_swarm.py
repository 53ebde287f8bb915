"""Two libtorrent sessions meet through a tracker and move a file.

Usage: python3 lt_swarm.py ANNOUNCE_URL WORKDIR [TIMEOUT_SECS]

ANNOUNCE_URL may be http:// or udp://. Both sessions live in this one
process on 127.0.0.1 with their own listen ports, so over udp:// they
announce from two source ports; libtorrent keeps one BEP 15 connection id
per tracker for the whole process and reuses it from both.

A seeder session announces a fresh v1-only torrent of a random 1 MiB file;
once the tracker has answered it, a leecher session adds the same torrent
with an empty download directory. DHT, LSD, UPnP and NAT-PMP are off, so
the two can only meet through the tracker. The leecher must download and
verify the whole file; then the leecher scrapes the tracker until it
reports both seeding and one completed download.

Prints one JSON line with what happened and exits 0; exits 1 with a
message on stderr on failure or after TIMEOUT_SECS (default 40) seconds.
The JSON has `download_secs`: from adding the torrent to the leecher until
it is seeding.

With LT_SWARM_PAUSE=1 in the environment, the script prints "seeder
announced" once the tracker has answered the seeder and waits for a line
on stdin before it starts the leecher (the caller restarts the tracker
meanwhile); the JSON then has `seeder_replies_after_pause`, the tracker
replies the seeder got after that: a leecher that found the seeder with
none found it in what the tracker kept across the restart.
"""

import hashlib
import json
import os
import sys
import time

import libtorrent as lt

TIMEOUT = float(sys.argv[3]) if len(sys.argv) > 3 else 40
PIECE = 16 * 1024
SIZE = 1024 * 1024

url, workdir = sys.argv[1], sys.argv[2]
PAUSE = os.environ.get("LT_SWARM_PAUSE") == "1"
state = {"libtorrent": lt.__version__, "events": []}
resumed = False


def fail(msg):
    print(f"lt_swarm: FAILED: {msg}", file=sys.stderr)
    print(f"lt_swarm: state so far: {json.dumps(state)}", file=sys.stderr)
    sys.exit(1)


def session(port):
    s = lt.session(
        {
            "listen_interfaces": f"127.0.0.1:{port}",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            # The tracker is on localhost: allow announcing to it and scraping it.
            "ssrf_mitigation": False,
            "allow_multiple_connections_per_ip": True,
            "alert_mask": lt.alert.category_t.all_categories,
            # Announce at once, do not wait for the first interval.
            "tracker_completion_timeout": 10,
            "tracker_receive_timeout": 10,
        }
    )
    return s


def pop(ses, who):
    out = []
    for a in ses.pop_alerts():
        t = type(a).__name__
        if t in (
            "tracker_reply_alert",
            "tracker_error_alert",
            "tracker_warning_alert",
            "scrape_reply_alert",
            "scrape_failed_alert",
            "peer_connect_alert",
            "torrent_finished_alert",
            "peer_error_alert",
        ):
            state["events"].append(f"{who}: {t}: {a.message()}")
        if resumed and who == "seeder" and t == "tracker_reply_alert":
            state["seeder_replies_after_pause"] += 1
        out.append(a)
    return out


seed_dir = os.path.join(workdir, "seed")
leech_dir = os.path.join(workdir, "leech")
os.makedirs(seed_dir)
os.makedirs(leech_dir)
data = os.urandom(SIZE)
with open(os.path.join(seed_dir, "payload.bin"), "wb") as f:
    f.write(data)

fs = lt.file_storage()
lt.add_files(fs, os.path.join(seed_dir, "payload.bin"))
ct = lt.create_torrent(fs, PIECE, flags=lt.create_torrent.v1_only)
ct.add_tracker(url)
lt.set_piece_hashes(ct, seed_dir)
info = lt.torrent_info(ct.generate())
state["info_hash"] = str(info.info_hash())

deadline = time.time() + TIMEOUT

seeder = session(0)
seeder_port = seeder.listen_port()
state["seeder_port"] = seeder_port
sh = seeder.add_torrent({"ti": info, "save_path": seed_dir, "flags": lt.torrent_flags.seed_mode})

# Wait for the seeder's first tracker reply.
while True:
    if time.time() > deadline:
        fail("the seeder got no tracker reply")
    alerts = pop(seeder, "seeder")
    if any(type(a).__name__ == "tracker_reply_alert" for a in alerts):
        break
    for a in alerts:
        if type(a).__name__ == "tracker_error_alert":
            fail(f"seeder tracker error: {a.message()}")
    time.sleep(0.05)

if PAUSE:
    print("seeder announced", flush=True)
    sys.stdin.readline()
    state["seeder_replies_after_pause"] = 0
    resumed = True
    # The wait may have been long; the leecher gets the same time as ever.
    deadline = time.time() + TIMEOUT

leecher = session(0)
leecher_port = leecher.listen_port()
state["leecher_port"] = leecher_port
leech_started = time.time()
lh = leecher.add_torrent({"ti": lt.torrent_info(info), "save_path": leech_dir})

# The leecher gets the seeder from the tracker and downloads the file.
peers_from_tracker = set()
while True:
    if time.time() > deadline:
        st = lh.status()
        fail(f"download did not finish: state {st.state}, progress {st.progress}, peers {st.num_peers}")
    for a in pop(leecher, "leecher"):
        if type(a).__name__ == "tracker_reply_alert":
            state["leecher_tracker_peers"] = a.num_peers
        if type(a).__name__ == "tracker_error_alert":
            fail(f"leecher tracker error: {a.message()}")
        # With DHT, LSD and PEX to nobody, an outgoing connection can only
        # go to a peer the tracker gave (the download may finish before
        # the peer list below is sampled).
        if type(a).__name__ == "peer_connect_alert" and "outgoing" in a.message():
            peers_from_tracker.add(f"{a.endpoint[0]}:{a.endpoint[1]}")
    pop(seeder, "seeder")
    for p in lh.get_peer_info():
        if p.source & lt.peer_info.tracker:
            peers_from_tracker.add(f"{p.ip[0]}:{p.ip[1]}")
    if lh.status().is_seeding:
        state["download_secs"] = round(time.time() - leech_started, 3)
        break
    time.sleep(0.05)

with open(os.path.join(leech_dir, "payload.bin"), "rb") as f:
    got = f.read()
if hashlib.sha1(got).digest() != hashlib.sha1(data).digest():
    fail("the downloaded file differs")
state["downloaded_bytes"] = len(got)
state["peers_from_tracker"] = sorted(peers_from_tracker)

# The leecher announced `completed`; scrape until the tracker shows it.
scrape = None
while True:
    if time.time() > deadline:
        fail(f"scrape never showed 2 seeders and 1 download: last {scrape}")
    lh.scrape_tracker()
    t0 = time.time()
    while time.time() - t0 < 2:
        done = False
        for a in pop(leecher, "leecher"):
            if type(a).__name__ == "scrape_reply_alert":
                scrape = {"complete": a.complete, "incomplete": a.incomplete}
                done = True
            if type(a).__name__ == "scrape_failed_alert":
                fail(f"scrape failed: {a.message()}")
        if done:
            break
        time.sleep(0.05)
    if scrape and scrape["complete"] == 2 and scrape["incomplete"] == 0:
        break
    time.sleep(0.2)
state["scrape"] = scrape

print(json.dumps(state))
sys.stdout.flush()
os._exit(0)

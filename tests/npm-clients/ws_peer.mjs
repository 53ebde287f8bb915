// One WebTorrent peer (npm bittorrent-tracker client over ws:// or wss://,
// WebRTC from its webrtc-polyfill / node-datachannel dependency).
//
// Usage: node ws_peer.mjs WS_URL INFO_HASH_HEX NAME [seed|leech]
//
// Announces `started`, prints one JSON line per event on stdout:
//   {"event":"update","complete":n,"incomplete":n}
//   {"event":"peer","id":"<hex peer id>"}       (an offer or answer came through the tracker)
//   {"event":"connect","id":"<hex>"}            (the WebRTC data channel is open)
//   {"event":"data","text":"..."}               (a message from the other peer)
//   {"event":"scrape","complete":n,"incomplete":n,"downloaded":n}
//   {"event":"ready"}
//   {"event":"done","code":n}
// Each connected peer is sent "hello from NAME". Once the greeting is sent
// and one received, the peer scrapes the tracker, prints `ready` and stays
// in the swarm until its stdin closes; then it exits 0. It fails (exit 1)
// after TIMEOUT_MS or on an `error` event. `warning` events are printed.

import { randomBytes } from 'node:crypto'
import Client from 'bittorrent-tracker'
import './ice_wait.mjs'

const TIMEOUT_MS = Number(process.env.WS_PEER_TIMEOUT_MS || 20000)
const [url, infoHash, name, role] = process.argv.slice(2)
if (!url || !infoHash || !name) {
  console.error('usage: node ws_peer.mjs WS_URL INFO_HASH_HEX NAME [seed|leech]')
  process.exit(2)
}

const peerId = Buffer.concat([Buffer.from('-WT0001-'), randomBytes(12)]).toString('hex')
const out = obj => console.log(JSON.stringify(obj))
out({ event: 'start', peerId, name })

const client = new Client({
  infoHash,
  peerId,
  announce: [url],
  port: 6881,
  // No STUN: the peers meet on this host's own addresses.
  rtcConfig: { iceServers: [] }
})

let sent = false
let received = false
let ready = false
function exchanged () {
  if (!sent || !received || ready) return
  ready = true
  client.once('scrape', data => {
    clearTimeout(timer)
    out({ event: 'scrape', complete: data.complete, incomplete: data.incomplete, downloaded: data.downloaded })
    out({ event: 'ready' })
  })
  client.scrape()
}
process.stdin.on('end', () => finish(ready ? 0 : 1, ready ? null : 'stdin closed before the exchange'))
process.stdin.resume()
function finish (code, msg) {
  if (msg) console.error(`ws_peer ${name}: ${msg}`)
  out({ event: 'done', code })
  try { client.destroy() } catch (e) {}
  setTimeout(() => process.exit(code), 200)
}
const timer = setTimeout(() => finish(1, `timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS)

client.on('error', err => finish(1, `error: ${err && err.message}`))
client.on('warning', err => out({ event: 'warning', message: String(err && err.message) }))
client.on('update', data => out({ event: 'update', complete: data.complete, incomplete: data.incomplete }))
client.on('peer', peer => {
  out({ event: 'peer', id: peer.id })
  // The SDP each way (as relayed by the tracker), for diagnosis.
  const cands = d => ((d && d.sdp) || '').split('\n').filter(l => l.startsWith('a=candidate')).map(l => l.trim())
  peer.on('signal', d => out({ event: 'local-sdp', type: d.type, candidates: cands(d) }))
  const signal = peer.signal.bind(peer)
  peer.signal = d => {
    out({ event: 'remote-sdp', type: d && d.type, candidates: cands(d) })
    signal(d)
  }
  peer.on('error', err => out({ event: 'peer-error', message: String(err && err.message) }))
  peer.on('connect', () => {
    out({ event: 'connect', id: peer.id })
    peer.send(`hello from ${name}`)
    sent = true
    exchanged()
  })
  peer.on('data', data => {
    out({ event: 'data', text: Buffer.from(data).toString() })
    received = true
    exchanged()
  })
})

client.start({ left: role === 'seed' ? 0 : 1000 })

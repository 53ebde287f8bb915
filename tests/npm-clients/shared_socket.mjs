// Two WebTorrent clients (npm bittorrent-tracker) in ONE node process, so
// they share one WebSocket to the tracker (the client pools sockets by
// URL), meet through it and connect over WebRTC.
//
// Usage: node shared_socket.mjs WS_URL INFO_HASH_HEX
//
// A seeds, B leeches, both announce `started` on the shared socket. B's
// offer must reach A over that same socket, A's answer come back to B, and
// the WebRTC data channel open: each sends "hello from NAME". B then
// scrapes. Prints one JSON line on stdout:
//   {"peerIdA":…,"peerIdB":…,"sockets":n,"consumers":n,
//    "peersOfA":[ids],"peersOfB":[ids],"connectedA":bool,"connectedB":bool,
//    "dataA":[texts],"dataB":[texts],"peerErrors":[…],"warnings":[…],"scrape":{…}|null}
// and exits 0 once everything happened, 1 after TIMEOUT_MS (the line is
// printed either way, for diagnosis). Exiting closes the socket.

import { randomBytes } from 'node:crypto'
import Client from 'bittorrent-tracker'
import WebSocketTracker from 'bittorrent-tracker/websocket-tracker'
import './ice_wait.mjs'

const TIMEOUT_MS = Number(process.env.WS_PEER_TIMEOUT_MS || 20000)
const [url, infoHash] = process.argv.slice(2)
if (!url || !infoHash) {
  console.error('usage: node shared_socket.mjs WS_URL INFO_HASH_HEX')
  process.exit(2)
}

const seen = {
  peerIdA: Buffer.concat([Buffer.from('-WT0001-'), randomBytes(12)]).toString('hex'),
  peerIdB: Buffer.concat([Buffer.from('-WT0002-'), randomBytes(12)]).toString('hex'),
  sockets: 0,
  consumers: 0,
  peersOfA: [],
  peersOfB: [],
  connectedA: false,
  connectedB: false,
  dataA: [],
  dataB: [],
  peerErrors: [],
  warnings: [],
  scrape: null
}

const clients = []
let finished = false
function finish (code, msg) {
  if (finished) return
  finished = true
  if (msg) console.error(`shared_socket: ${msg}`)
  console.log(JSON.stringify(seen))
  for (const c of clients) {
    try { c.destroy() } catch (e) {}
  }
  setTimeout(() => process.exit(code), 200)
}
const timer = setTimeout(() => finish(1, `timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS)

function done () {
  return seen.connectedA && seen.connectedB && seen.dataA.length > 0 && seen.dataB.length > 0
}

let scraping = false
function maybeScrape () {
  if (!done() || scraping) return
  scraping = true
  b.once('scrape', data => {
    seen.scrape = { complete: data.complete, incomplete: data.incomplete, downloaded: data.downloaded }
    clearTimeout(timer)
    finish(0)
  })
  b.scrape()
}

function makeClient (name, peerId, role) {
  const client = new Client({
    infoHash,
    peerId,
    announce: [url],
    port: 6881,
    rtcConfig: { iceServers: [] }
  })
  client.on('error', err => finish(1, `client ${name} error: ${err && err.message}`))
  client.on('warning', err => seen.warnings.push(`${name}: ${err && err.message}`))
  client.on('peer', peer => {
    seen[`peersOf${name}`].push(peer.id)
    peer.on('error', err => seen.peerErrors.push(`${name}: ${err && err.message}`))
    peer.on('connect', () => {
      seen[`connected${name}`] = true
      peer.send(`hello from ${name}`)
      maybeScrape()
    })
    peer.on('data', data => {
      seen[`data${name}`].push(Buffer.from(data).toString())
      maybeScrape()
    })
  })
  clients.push(client)
  client.start({ left: role === 'seed' ? 0 : 1000 })
  return client
}

makeClient('A', seen.peerIdA, 'seed')
const b = makeClient('B', seen.peerIdB, 'leech')

// Both clients must be on one pooled socket, or this test proves nothing.
const pool = WebSocketTracker._socketPool
seen.sockets = Object.keys(pool).length
seen.consumers = Object.values(pool).reduce((n, s) => n + s.consumers, 0)
if (seen.sockets !== 1 || seen.consumers !== 2) {
  clearTimeout(timer)
  finish(1, 'the two clients do not share one socket')
}

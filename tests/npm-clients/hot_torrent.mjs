// One bittorrent-tracker (npm) client joins a torrent the test keeps hot,
// so the tracker's XDP program answers from its cache.
//
// Usage: node hot_torrent.mjs udp://HOST:PORT INFO_HASH_HEX
//
// The client announces `started` (a leecher), waits for its answer, then
// sends an `update` announce (event none) and waits for that answer too.
// Prints one JSON line: the peers it was told about and the counts of each
// answer, and exits 0; exits 1 with a message on stderr on any
// `error`/`warning` event or after 15 s.

import { randomBytes } from 'node:crypto'
import Client from 'bittorrent-tracker'

const TIMEOUT_MS = 15000

const [url, infoHash] = process.argv.slice(2)
if (!url || !/^udp:\/\//.test(url) || !/^[0-9a-f]{40}$/.test(infoHash || '')) {
  console.error('usage: node hot_torrent.mjs udp://HOST:PORT INFO_HASH_HEX')
  process.exit(2)
}

const peerId = Buffer.concat([Buffer.from('-TT0003-'), randomBytes(12)]).toString('hex')
const port = 20000 + Math.floor(Math.random() * 10000)
const seen = { port, peers: [], updates: [] }

const client = new Client({ infoHash, peerId, announce: [url], port })

function fail (msg) {
  console.error(`hot_torrent: FAILED: ${msg}`)
  console.error(`hot_torrent: state so far: ${JSON.stringify(seen)}`)
  try { client.destroy() } catch (e) {}
  process.exit(1)
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS)
client.on('error', err => fail(`error: ${err && err.message}`))
client.on('warning', err => fail(`warning: ${err && err.message}`))
client.on('peer', addr => seen.peers.push(addr))
client.on('update', data => seen.updates.push({ complete: data.complete, incomplete: data.incomplete }))

function nextUpdate () {
  return new Promise(resolve => client.once('update', resolve))
}

async function main () {
  const started = nextUpdate()
  client.start()
  await started
  const updated = nextUpdate()
  client.update()
  await updated
  clearTimeout(timer)
  console.log(JSON.stringify(seen))
  client.removeAllListeners('warning')
  client.on('warning', () => {})
  client.destroy()
  process.exit(0)
}

main().catch(err => fail(`exception: ${err && err.stack}`))

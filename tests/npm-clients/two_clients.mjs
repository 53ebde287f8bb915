// Two bittorrent-tracker (npm) clients meet through a UDP or HTTP tracker.
//
// Usage: node two_clients.mjs udp://127.0.0.1:PORT [CLIENT_IP]
//        node two_clients.mjs http://127.0.0.1:PORT/announce [CLIENT_IP]
//
// Client A (a seeder, left = 0) announces `started`; then client B (a
// leecher) announces `started` and must be told about A. A then sends an
// `update` announce and must be told about B. Finally B scrapes the torrent.
// Prints one JSON line with what was seen and exits 0; exits 1 with a message
// on stderr on any `error`/`warning` event or after 15 s.

import { randomBytes } from 'node:crypto'
import Client from 'bittorrent-tracker'

const TIMEOUT_MS = 15000

const url = process.argv[2]
if (!url || !/^(udp|https?):\/\//.test(url)) {
  console.error('usage: node two_clients.mjs udp://HOST:PORT|http://HOST:PORT/announce [CLIENT_IP]')
  process.exit(2)
}

const infoHash = randomBytes(20).toString('hex')
// Distinct 20-byte peer ids (Azureus style prefix + random tail).
const peerIdA = Buffer.concat([Buffer.from('-TT0001-'), randomBytes(12)]).toString('hex')
const peerIdB = Buffer.concat([Buffer.from('-TT0002-'), randomBytes(12)]).toString('hex')
const portA = 20000 + Math.floor(Math.random() * 10000)
const portB = portA + 1

const seen = {
  infoHash,
  portA,
  portB,
  peersSeenByA: [],
  peersSeenByB: [],
  updatesA: [],
  updatesB: [],
  scrape: null
}

const clients = []

function fail (msg) {
  console.error(`two_clients: FAILED: ${msg}`)
  console.error(`two_clients: state so far: ${JSON.stringify(seen)}`)
  for (const c of clients) {
    try { c.destroy() } catch (e) {}
  }
  process.exit(1)
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS)

function makeClient (name, peerId, port, peerList, updateList) {
  const client = new Client({ infoHash, peerId, announce: [url], port })
  client.on('error', err => fail(`client ${name} error: ${err && err.message}`))
  client.on('warning', err => fail(`client ${name} warning: ${err && err.message}`))
  client.on('peer', addr => peerList.push(addr))
  client.on('update', data => updateList.push({ complete: data.complete, incomplete: data.incomplete }))
  clients.push(client)
  return client
}

const a = makeClient('A', peerIdA, portA, seen.peersSeenByA, seen.updatesA)
const b = makeClient('B', peerIdB, portB, seen.peersSeenByB, seen.updatesB)

// The address the tracker sees the clients at (they share one host).
const clientIp = process.argv[3] || '127.0.0.1'
const addrA = `${clientIp}:${portA}`
const addrB = `${clientIp}:${portB}`

function waitFor (emitter, event, pred) {
  return new Promise(resolve => {
    const handler = (...args) => {
      if (pred(...args)) {
        emitter.removeListener(event, handler)
        resolve(args[0])
      }
    }
    emitter.on(event, handler)
  })
}

async function main () {
  // A: seeder, first in the swarm.
  const aFirstUpdate = waitFor(a, 'update', () => true)
  a.start({ left: 0 })
  await aFirstUpdate

  // B: leecher; its first response must contain A.
  const bSawA = waitFor(b, 'peer', addr => addr === addrA)
  const bFirstUpdate = waitFor(b, 'update', () => true)
  b.start()
  await Promise.all([bSawA, bFirstUpdate])

  // A re-announces and must now see B.
  const aSawB = waitFor(a, 'peer', addr => addr === addrB)
  const aSecondUpdate = waitFor(a, 'update', () => true)
  a.update({ left: 0 })
  await Promise.all([aSawB, aSecondUpdate])

  const scraped = waitFor(b, 'scrape', () => true)
  b.scrape()
  const s = await scraped
  seen.scrape = { infoHash: s.infoHash, complete: s.complete, incomplete: s.incomplete, downloaded: s.downloaded }

  clearTimeout(timer)
  console.log(JSON.stringify(seen))
  // Do not send `stopped` announces: just drop the clients.
  for (const c of clients) {
    c.removeAllListeners('warning')
    c.on('warning', () => {})
    c.destroy()
  }
  process.exit(0)
}

main().catch(err => fail(`exception: ${err && err.stack}`))

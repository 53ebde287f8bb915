// Imported for its effect by the WebRTC scripts (ws_peer.mjs,
// shared_socket.mjs).
//
// bittorrent-tracker makes non-trickle peers, which wait for ICE gathering
// to complete before their offer or answer is sent; node-datachannel does
// not report completion, so simple-peer's 5 s timeout fires every time. Host
// candidates are gathered within milliseconds: cap that wait (client-side;
// generous, for a loaded machine) so a test takes seconds, not tens of
// seconds.

import Peer from '@thaunknown/simple-peer/lite.js'

const ICE_WAIT_MS = 2000
Object.defineProperty(Peer.prototype, 'iceCompleteTimeout', {
  configurable: true,
  get () { return this._testIceCompleteTimeout },
  set (v) { this._testIceCompleteTimeout = Math.min(v, ICE_WAIT_MS) }
})

// A TCP proxy on loopback that counts connections: how many are open now, the most ever open at once, and how
// many were opened in all. Used by the tests (the pool cap, counted at the server side) and the benchmarks.
import net from 'node:net'

/**
 * Starts a proxy to `targetEndpoint` (an http:// URL); point a client's `endpoint` at the returned `endpoint`.
 * `responseDelayMs` holds every byte from the server back that long (in order), so a test can act while a
 * request is in flight. `cutAfterBytes` with `cutConnections`: the first `cutConnections` connections are reset
 * after that many response bytes (a network failure in the middle of a body).
 */
export async function startCountingProxy(targetEndpoint, { responseDelayMs = 0, cutAfterBytes = 0, cutConnections = 0 } = {}) {
  let cutsLeft = cutConnections
  const target = new URL(targetEndpoint)
  const stats = { open: 0, peak: 0, total: 0 }
  const sockets = new Set()
  const srv = net.createServer((client) => {
    stats.open++
    stats.total++
    stats.peak = Math.max(stats.peak, stats.open)
    const upstream = net.connect(Number(target.port), target.hostname)
    sockets.add(client)
    sockets.add(upstream)
    let closed = false
    const close = () => {
      if (closed) return
      closed = true
      stats.open--
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    // 'end': the client sent its FIN, i.e. closed its socket; counted then, not after Node's own teardown.
    client.on('error', close).on('end', close).on('close', close)
    upstream.on('error', close).on('close', close)
    client.pipe(upstream)
    if (cutAfterBytes > 0 && cutsLeft > 0) {
      // A fault: this connection is reset after `cutAfterBytes` bytes of response.
      cutsLeft--
      stats.cut = (stats.cut ?? 0) + 1
      let sent = 0
      upstream.on('data', (chunk) => {
        if (closed) return
        const room = cutAfterBytes - sent
        if (chunk.length < room) {
          sent += chunk.length
          client.write(chunk)
        } else {
          client.write(chunk.subarray(0, room), () => client.resetAndDestroy())
          upstream.destroy()
        }
      })
    } else if (responseDelayMs > 0) {
      upstream.on('data', (chunk) => setTimeout(() => closed || client.write(chunk), responseDelayMs))
    } else {
      upstream.pipe(client)
    }
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  return {
    endpoint: `http://127.0.0.1:${srv.address().port}`,
    stats,
    /** Starts a new peak measurement from the connections open now. */
    resetPeak() {
      stats.peak = stats.open
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => srv.close(r))
    },
  }
}

// A TCP proxy on loopback that behaves like a real uplink: a round-trip time, and a bandwidth per direction
// shared by every connection (an artist's home or office line), with a bounded queue at the bottleneck. For the
// benchmark's "real uplink" rows (npm run bench -- --link 40,100,500).
//
//   const link = await startLinkProxy('http://127.0.0.1:9000', { rttMs: 40, upMbit: 100, downMbit: 500 })
//   // point the client at link.endpoint; link.stats: bytes each way, connections
//
// Model: each direction is one FIFO link. A chunk starts when the link is free, takes `bytes / rate` to send,
// and arrives `rttMs / 2` after it was sent. A connection waits one round trip before its first byte (the
// handshake). The queue holds at most `queueBytes` per direction (a router's buffer); past that the sending
// sockets are paused, so TCP's flow control reaches the client as on a real line.
import net from 'node:net'

/** One direction of the line. */
class Link {
  constructor(bytesPerSecond, delayMs, queueBytes) {
    this.rate = bytesPerSecond
    this.delay = delayMs
    this.queueBytes = queueBytes
    this.freeAt = 0 // when the line finishes sending what it has
    this.queued = 0 // bytes taken but not yet delivered
    this.paused = new Set()
    this.bytes = 0
  }

  /** Sends `chunk` from `from` to `to`; pauses `from` while the queue is full. */
  send(from, to, chunk) {
    const now = performance.now()
    const start = Math.max(now, this.freeAt)
    this.freeAt = start + (chunk.length / this.rate) * 1000
    this.queued += chunk.length
    this.bytes += chunk.length
    setTimeout(() => {
      this.queued -= chunk.length
      if (!to.destroyed) to.write(chunk)
      if (this.queued < this.queueBytes / 2) {
        for (const s of this.paused) s.resume()
        this.paused.clear()
      }
    }, this.freeAt + this.delay - now)
    if (this.queued > this.queueBytes) {
      from.pause()
      this.paused.add(from)
    }
  }
}

/**
 * Starts a link to `targetEndpoint` (an http:// URL). `rttMs` round trip; `upMbit` client → server and
 * `downMbit` server → client, in megabits per second; `queueBytes` per direction (default: 100 ms of the
 * direction's rate, at least 64 KiB).
 */
export async function startLinkProxy(targetEndpoint, { rttMs = 40, upMbit = 100, downMbit = 500, queueBytes } = {}) {
  const target = new URL(targetEndpoint)
  const rate = (mbit) => (mbit * 1e6) / 8
  const queue = (mbit) => queueBytes ?? Math.max(64 * 1024, rate(mbit) / 10)
  const up = new Link(rate(upMbit), rttMs / 2, queue(upMbit))
  const down = new Link(rate(downMbit), rttMs / 2, queue(downMbit))
  const stats = { connections: 0, get upBytes() { return up.bytes }, get downBytes() { return down.bytes } }
  const sockets = new Set()
  const srv = net.createServer((client) => {
    stats.connections++
    client.pause()
    const upstream = net.connect(Number(target.port), target.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.setNoDelay(true)
    }
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
    // A FIN travels the line too: after what was sent before it.
    client.on('end', () => setTimeout(() => upstream.end(), Math.max(0, up.freeAt - performance.now()) + up.delay))
    upstream.on('end', () => setTimeout(() => client.end(), Math.max(0, down.freeAt - performance.now()) + down.delay))
    client.on('data', (chunk) => up.send(client, upstream, chunk))
    upstream.on('data', (chunk) => down.send(upstream, client, chunk))
    // The handshake: one round trip before anything flows.
    setTimeout(() => client.resume(), rttMs)
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  return {
    endpoint: `http://127.0.0.1:${srv.address().port}`,
    stats,
    /** The line's capacity in bytes per second, each way. */
    capacity: { up: rate(upMbit), down: rate(downMbit) },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((r) => srv.close(r))
    },
  }
}

/**
 * The link in a process of its own (for a parent that blocks in spawnSync, as the benchmark does): resolves with
 * `{ endpoint, capacity, close() }` once it listens.
 */
export async function spawnLinkProxy(targetEndpoint, { rttMs, upMbit, downMbit }) {
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, targetEndpoint, String(rttMs), String(upMbit), String(downMbit)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const first = await new Promise((resolve, reject) => {
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      if (buf.includes('\n')) resolve(JSON.parse(buf.split('\n')[0]))
    })
    child.on('exit', (code) => reject(new Error(`link proxy exited with ${code}`)))
  })
  return {
    ...first,
    async close() {
      child.kill()
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)))
    },
  }
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [target, rttMs, upMbit, downMbit] = process.argv.slice(2)
  const link = await startLinkProxy(target, { rttMs: Number(rttMs), upMbit: Number(upMbit), downMbit: Number(downMbit) })
  console.log(JSON.stringify({ endpoint: link.endpoint, capacity: link.capacity }))
}

// An HTTP proxy on loopback that injects faults between a client and the real S3 server: the tests' flaky network.
//
// Each request the proxy receives is either passed through or given one fault, picked at random (seeded, so a
// run's fault mix is repeatable) with the probabilities given:
//   error500     the request body is read, then 500 InternalError (S3's XML), nothing reaches the server;
//   slowDown     the same with 503 SlowDown, S3's "reduce your request rate";
//   resetRequest the connection is reset while the request body is arriving (mid-upload), or at once for GETs;
//   stall        the request is read and never answered: the client's read timeout must fire;
//   cutResponse  the request reaches the server, and its response is reset after a random part of the bytes
//                (mid-download; for a PUT, the server stored the data but the client never hears so);
//   stallBody    the same, but instead of a reset the response just stops (the connection stays open);
//   corruptBody  the response to an object GET arrives whole, with one byte of its body flipped (a bad disk or
//                a broken middlebox; TCP's own checksum would not notice). Other requests pass: a corrupted
//                listing is an XML error, which is not what the tests using this are about.
// Apart from those, `corruptRequest(req, op)` picks requests whose body reaches the server with one byte flipped
// (an upload corrupted on the way, which only a checksum the server verifies can catch). Meant for plain bodies
// with a content-length: in an `aws-chunked` body (a trailing checksum) the byte may land in the chunk framing.
// A request (method + path + query + Range) is faulted at most `maxFaultsPerRequest` times, so a client that
// retries enough always gets through, and a test is never flaky by bad luck. `maxFaultsPerRequest: Infinity`
// makes chosen requests fail for good (retries exhausted).
import http from 'node:http'

const FAULTS = ['error500', 'slowDown', 'resetRequest', 'stall', 'cutResponse', 'stallBody', 'corruptBody']

/** The S3 operation a request is (path-style addressing), for counting: PutObject, UploadPart, HeadObject, ... */
export function operationOf(req) {
  const url = new URL(req.url, 'http://x')
  const q = url.searchParams
  const objectPath = url.pathname.split('/').filter(Boolean).length > 1
  switch (req.method) {
    case 'HEAD':
      return objectPath ? 'HeadObject' : 'HeadBucket'
    case 'PUT':
      if (q.has('partNumber')) return 'UploadPart'
      return objectPath ? 'PutObject' : 'CreateBucket'
    case 'POST':
      if (q.has('uploads')) return 'CreateMultipartUpload'
      if (q.has('uploadId')) return 'CompleteMultipartUpload'
      return 'Post'
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject'
    default:
      if (q.has('uploadId')) return 'ListParts'
      if (q.has('uploads')) return 'ListMultipartUploads'
      return objectPath ? 'GetObject' : 'ListObjects'
  }
}

/** mulberry32: a tiny seeded PRNG, enough for picking faults. */
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function s3Error(res, status, code, message) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/**
 * Starts a proxy to `targetEndpoint` (an http:// URL); point a client's `endpoint` at the returned `endpoint`.
 * `faults`: { error500, slowDown, resetRequest, stall, cutResponse, stallBody, corruptBody } probabilities (their sum ≤ 1).
 * `applies(req)`: which requests may be faulted (default: all). `stats` counts requests, each fault, and
 * requests by S3 operation (`stats.operations.PutObject`, ...). `refuse(req, op)`: an S3 error
 * `{ status, code, message }` to answer instead of forwarding (as a store that checks something the local server
 * does not: an expected bucket owner, an expired key), or null; counted in `stats.refused`. `stats.requestLog`
 * keeps each request's operation and headers (`{ op, method, url, headers }`) when `log: true`.
 * `corruptRequest(req, op)`: true for a request whose body is forwarded with one byte flipped (counted in
 * `stats.corruptedRequests` once flipped).
 */
export async function startFaultProxy(
  targetEndpoint,
  { faults = {}, seed = 1, maxFaultsPerRequest = 2, applies = () => true, stallMs = 120_000, refuse = () => null, log = false, corruptRequest = () => false } = {},
) {
  for (const name of Object.keys(faults)) if (!FAULTS.includes(name)) throw new Error(`unknown fault '${name}'`)
  const random = prng(seed)
  const target = new URL(targetEndpoint)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  const faultedTimes = new Map()
  const stats = { requests: 0, passed: 0, refused: 0, corruptedRequests: 0, operations: {}, requestLog: [], ...Object.fromEntries(FAULTS.map((f) => [f, 0])) }
  const sockets = new Set()

  const pick = (req) => {
    if (!applies(req)) return null
    const id = `${req.method} ${req.url} ${req.headers.range ?? ''}`
    if ((faultedTimes.get(id) ?? 0) >= maxFaultsPerRequest) return null
    let r = random()
    for (const name of FAULTS) {
      r -= faults[name] ?? 0
      if (r < 0) {
        if (name === 'corruptBody' && (req.method !== 'GET' || req.url.includes('list-type'))) return null
        faultedTimes.set(id, (faultedTimes.get(id) ?? 0) + 1)
        return name
      }
    }
    return null
  }

  // `cut`: 'reset' or 'stall' the response part-way, or 'corrupt' one byte of it. `flip`: one byte of the
  // request body is flipped on its way to the server.
  const forward = (req, res, cut, flip = false) => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent },
      (up) => {
        res.writeHead(up.statusCode, up.headers)
        if (!cut) {
          up.pipe(res)
          return
        }
        if (cut === 'corrupt') {
          const flip = flipper(up.headers['content-length'])
          up.on('data', (chunk) => res.write(flip(chunk)))
          up.on('end', () => res.end())
          return
        }
        // Let through a random part of the body, then reset the connection or fall silent.
        const length = Number(up.headers['content-length'] ?? 0)
        let room = Math.floor(random() * length)
        const stop = () => (cut === 'reset' ? req.socket.resetAndDestroy() : stall(req))
        if (room === 0) {
          res.flushHeaders()
          up.destroy()
          stop()
          return
        }
        up.on('data', (chunk) => {
          if (room <= 0) return
          if (chunk.length < room) {
            room -= chunk.length
            res.write(chunk)
          } else {
            res.write(chunk.subarray(0, room), stop)
            room = 0
            up.destroy()
          }
        })
        up.on('end', () => room > 0 && res.end())
      },
    )
    upstream.on('error', () => req.socket.destroy())
    if (!flip) {
      req.pipe(upstream)
      return
    }
    const flipOne = flipper(req.headers['content-length'], () => stats.corruptedRequests++)
    req.on('data', (chunk) => upstream.write(flipOne(chunk)) || req.pause())
    upstream.on('drain', () => req.resume())
    req.on('end', () => upstream.end())
    req.on('error', () => upstream.destroy())
  }

  // A chunk transform that flips one byte at a random place in a body of `length` bytes (`flipped` is called
  // once it has).
  const flipper = (length, flipped = () => {}) => {
    let at = Math.floor(random() * Number(length ?? 0))
    return (chunk) => {
      if (at >= 0 && at < chunk.length) {
        chunk = Buffer.from(chunk)
        chunk[at] ^= 0x20
        flipped()
      }
      at -= chunk.length
      return chunk
    }
  }

  // Silence on the connection; it is closed after `stallMs` so nothing lingers past a test.
  const stall = (req) => {
    const timer = setTimeout(() => req.socket.destroy(), stallMs)
    req.socket.on('close', () => clearTimeout(timer))
  }

  const srv = http.createServer((req, res) => {
    stats.requests++
    const op = operationOf(req)
    stats.operations[op] = (stats.operations[op] ?? 0) + 1
    if (log) stats.requestLog.push({ op, method: req.method, url: req.url, headers: { ...req.headers } })
    const refused = refuse(req, op)
    if (refused) {
      stats.refused++
      req.resume()
      req.on('end', () => s3Error(res, refused.status, refused.code, refused.message))
      return
    }
    if (corruptRequest(req, op)) {
      forward(req, res, null, true)
      return
    }
    const fault = pick(req)
    if (fault) stats[fault]++
    else stats.passed++
    switch (fault) {
      case 'error500':
        req.resume()
        req.on('end', () => s3Error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.'))
        return
      case 'slowDown':
        req.resume()
        req.on('end', () => s3Error(res, 503, 'SlowDown', 'Please reduce your request rate.'))
        return
      case 'resetRequest': {
        const length = Number(req.headers['content-length'] ?? 0)
        if (length === 0) return req.socket.resetAndDestroy()
        let seen = 0
        const limit = Math.floor(random() * length)
        req.on('data', (chunk) => {
          seen += chunk.length
          if (seen > limit) req.socket.resetAndDestroy()
        })
        return
      }
      case 'stall':
        req.resume()
        stall(req)
        return
      default:
        forward(req, res, { cutResponse: 'reset', stallBody: 'stall', corruptBody: 'corrupt' }[fault])
    }
  })
  srv.keepAliveTimeout = 60_000
  srv.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((r) => srv.listen(0, '127.0.0.1', r))
  return {
    endpoint: `http://127.0.0.1:${srv.address().port}`,
    stats,
    /** How many faults were injected in all. */
    get injected() {
      return FAULTS.reduce((n, f) => n + stats[f], 0)
    },
    async close() {
      for (const s of sockets) s.destroy()
      agent.destroy()
      await new Promise((r) => srv.close(r))
    },
  }
}

// Must compile under `tsc --strict`: the public API as a TypeScript user writes it.
import { TransferClient, upload, download, type TransferProgress, type TransferSummary, type ClientOptions } from 's3-ferry'

const options: ClientOptions = {
  region: 'us-east-1',
  endpoint: 'http://127.0.0.1:9000',
  forcePathStyle: true,
  credentials: { accessKeyId: 'a', secretAccessKey: 'b', sessionToken: 'c' },
  maxPoolConnections: 50,
  partSize: 8 * 1024 * 1024,
  maxBandwidth: 10_000_000,
  checksum: 'whenRequired',
  configFile: '/etc/s3-ferry.ini',
}
const client = new TransferClient(options)
const workers: number = client.settings.uploadWorkers

async function main(signal: AbortSignal): Promise<number> {
  const onProgress = (p: TransferProgress): void => {
    const ratio: number = p.transferredBytes / p.totalBytes
    void ratio
  }
  const up: TransferSummary = await client.upload({ bucket: 'jobs', localDir: './bundle', keyPrefix: 'job-42/', signal, onProgress })
  await client.upload({ bucket: 'jobs', files: [{ path: '/abs/scene.blend', key: 'job-42/scene.blend' }], maxBandwidth: 1_000_000 })
  await client.download({ bucket: 'jobs', keyPrefix: 'job-42/', localDir: './out', progressIntervalMs: 50 })
  await client.download({ bucket: 'jobs', objects: [{ key: 'job-42/scene.blend', path: '/tmp/scene.blend' }] })
  await upload({ bucket: 'jobs', localDir: './bundle', keyPrefix: 'x/', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true })
  const down = await download({ bucket: 'jobs', keyPrefix: 'x/', localDir: './o', signal: AbortSignal.timeout(1000) })
  return up.files + down.bytesPerSecond + workers
}
void main

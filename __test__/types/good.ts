// Must compile under `tsc --strict`: the public API as a TypeScript user writes it.
import { TransferClient, upload, download, type TransferProgress, type TransferSummary, type ClientOptions } from 's3-ferry'
import { fromEnv, fromIni, fromNodeProviderChain } from '@aws-sdk/credential-providers'

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
  // Real accounts: AWS SDK v3 providers as they are, anonymous reads, object settings, SSE-C, the bucket owner.
  const refreshing = new TransferClient({ credentials: fromIni({ profile: 'render' }) })
  new TransferClient({ credentials: fromNodeProviderChain() })
  new TransferClient({ credentials: fromEnv() })
  new TransferClient({ credentials: async () => ({ accessKeyId: 'a', secretAccessKey: 'b', expiration: new Date() }) })
  new TransferClient({ anonymous: true })
  await refreshing.upload({
    bucket: 'jobs',
    files: [{ path: '/abs/a.exr', key: 'a.exr', contentType: 'image/x-exr', metadata: { frame: '1' }, storageClass: 'GLACIER_IR' }],
    cacheControl: 'max-age=60',
    contentDisposition: 'attachment',
    contentEncoding: 'gzip',
    contentLanguage: 'en',
    guessContentType: false,
    metadata: { job: '42' },
    tagging: { project: 'alpha' },
    storageClass: 'INTELLIGENT_TIERING',
    acl: 'bucket-owner-full-control',
    sse: 'aws:kms',
    sseKmsKeyId: 'alias/jobs',
    bucketKeyEnabled: true,
    expectedBucketOwner: '111122223333',
  })
  await refreshing.download({ bucket: 'jobs', localDir: './o', sseCustomerKey: new Uint8Array(32), expectedBucketOwner: '111122223333' })
  await refreshing.upload({ bucket: 'jobs', localDir: './o', sseCustomerKey: 'base64-of-32-bytes' })
  await refreshing.uploadContentAddressed({ bucket: 'jobs', rootPrefix: 'ja', localDir: './o', expectedBucketOwner: '111122223333' })
  const made: boolean = (await refreshing.createBucket({ bucket: 'new-jobs', signal })).created
  void made
  return up.files + down.bytesPerSecond + workers
}
void main

// Must NOT compile: each line marked with its expected TypeScript error code.
import { TransferClient } from 's3-ferry'

new TransferClient({ maxPoolConection: 50 }) // TS2561: misspelt option
new TransferClient({ partSize: '8MB' }) // TS2322: wrong type
new TransferClient({ checksum: 'always' }) // TS2322: not one of the policies
const c = new TransferClient()
void c.upload({ localDir: './x' }) // TS2345: bucket is required
void c.download({ bucket: 'b', onProgress: (p: string) => p }) // TS2322: callback takes a TransferProgress
void c.upload({ bucket: 'b', localDir: '.', storageClass: 'CHEAP' }) // TS2322: not a storage class
void c.upload({ bucket: 'b', localDir: '.', sse: 'aes256' }) // TS2820: not an SSE algorithm (did you mean 'AES256'?)
new TransferClient({ credentials: async () => ({ accessKeyId: 'a' }) }) // TS2322: secretAccessKey missing

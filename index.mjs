// ESM entry: the same objects as the CommonJS entry.
import cjs from './index.js'

export const { TransferClient, upload, download } = cjs
export default cjs

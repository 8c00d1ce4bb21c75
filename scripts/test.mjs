// `npm test`: everything from a fresh clone, nothing assumed but Node, Rust and Python 3.
//  1. npm packages (npm ci when node_modules is missing or older than the lock file), and the Debian packages
//     the tests use (tmux, binutils) when missing;
//  2. the debug build of the addon (tests use the debug build; the benchmark builds release), then a check that
//     the generated files (index.d.ts, native.js) are exactly what is committed;
//  3. the engine's cargo tests (same target dir as the addon build, so dependencies compile once);
//  4. a real S3 server (SeaweedFS from PyPI) on loopback, and the Node tests in __test__/ against it; for the
//     checksum tests also s3s-fs 0.17 (built once with Debian's Rust 1.96: `rustc-web`, `cargo-web`).
// Flags: --skip-build (use the built addon), --only-node, --only-cargo; extra args go to `node --test`.
import { execFileSync, spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { QUIET_SDK, ROOT, buildAddon, debugEnv, ensureDebianPackages, ensureNpmDeps, sh } from './setup.mjs'

const args = process.argv.slice(2)
const flag = (f) => args.includes(f)
const passthrough = args.filter((a) => !a.startsWith('--skip-') && !a.startsWith('--only-'))
// The host triple: `napi build --platform` builds for it (target/<triple>/), so cargo test shares that target dir.
const TARGET = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (\S+)/m)[1]

function step(name) {
  console.log(`\n== ${name}`)
}

ensureNpmDeps()
// tmux for the CLI's terminal test; binutils' strip for the package test.
ensureDebianPackages({ tmux: 'tmux', binutils: 'strip' })

if (!flag('--only-node')) {
  if (!flag('--skip-build')) {
    buildAddon({ release: false })
    const inGit = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: ROOT }).status === 0
    if (inGit) {
      const diff = spawnSync('git', ['diff', '--exit-code', '--stat', '--', 'index.d.ts', 'native.js'], { cwd: ROOT, stdio: 'inherit' })
      if (diff.status !== 0) {
        console.error('The build changed generated files (index.d.ts / native.js): regenerate and commit them.')
        process.exit(1)
      }
    }
  }
  step('cargo test (engine)')
  sh('cargo', ['test', '--lib', '--target', TARGET])
  if (flag('--only-cargo')) process.exit(0)
}

// Test files named on the command line run alone; otherwise every __test__/*.test.mjs.
const named = passthrough.filter((a) => a.endsWith('.mjs'))
const options = passthrough.filter((a) => !a.endsWith('.mjs'))
const files = named.length
  ? named
  : readdirSync(path.join(ROOT, '__test__'))
      .filter((f) => f.endsWith('.test.mjs'))
      .map((f) => path.join('__test__', f))

// The store that verifies XXHASH128 checksums, for content-checksum.test.mjs: s3s-fs 0.17, built once into
// .cache/ (about 7 minutes) with Debian's Rust 1.96. Where it cannot be built (not Debian, not root) those tests
// skip, unless S3_FERRY_REQUIRE_S3SFS=1 (CI) makes that a failure.
if (files.some((f) => path.basename(f) === 'content-checksum.test.mjs')) {
  step('s3s-fs 0.17 (verifies XXHASH128) for content-checksum.test.mjs')
  const { ensureS3sFs, VERIFYING_VERSION } = await import('./s3s-fs.mjs')
  try {
    ensureS3sFs(VERIFYING_VERSION)
  } catch (e) {
    if (process.env.S3_FERRY_REQUIRE_S3SFS === '1') throw e
    console.warn(`== ${e.message}: content-checksum.test.mjs will skip`)
  }
}

step('start the local S3 server')
const { startS3Server, serverEnv } = await import('./s3-server.mjs')
const server = await startS3Server()
console.log(`SeaweedFS S3 at ${server.endpoint}`)
// The tests load the debug build (target/addon-debug/), never a release binary at the package root.
const env = { ...process.env, ...serverEnv(server), ...debugEnv(), ...QUIET_SDK }
let status = 1
try {
  step('node --test __test__/')
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...options, ...files], { stdio: 'inherit', cwd: ROOT, env })
  status = r.status ?? 1
} finally {
  await server.stop()
}
process.exit(status)

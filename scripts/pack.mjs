// `npm run pack`: installable tarballs for this platform from a clone, before (or without) a release on npm: the
// root package `s3-ferry` and this platform's binary package (`s3-ferry-linux-x64-gnu`, ...) with the binary in it.
// Install both with npm in any project:
//
//   npm run pack                      # release build (a cold one takes several minutes on 2 cores), into dist/
//   npm install /path/to/s3-ferry/dist/s3-ferry-0.1.0.tgz /path/to/s3-ferry/dist/s3-ferry-linux-x64-gnu-0.1.0.tgz
//
// Flags: --debug (the debug build, debug info stripped: what the tests pack), --skip-build (pack what is built),
// --out DIR (default dist/).
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { ROOT, buildAddon, debugBinary, ensureNpmDeps, platformName, releaseBinary } from './setup.mjs'

// npm is a .cmd script on Windows, which only a shell starts.
const NPM = { shell: process.platform === 'win32' }

function npmPack(dir, dest) {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8', ...NPM })
  return path.join(dest, JSON.parse(out)[0].filename)
}

/** Packs the root package and this platform's package with its binary into `out`; returns both tarballs' paths. */
export function packTarballs({ debug = false, skipBuild = false, out = path.join(ROOT, 'dist') } = {}) {
  const platform = platformName()
  const platformDir = path.join(ROOT, 'npm', platform)
  if (!existsSync(platformDir)) throw new Error(`no platform package for ${platform} (npm/${platform}): this platform has no prebuilt target`)
  if (!skipBuild) buildAddon({ release: !debug })
  const binary = debug ? debugBinary() : releaseBinary()
  if (!existsSync(binary)) throw new Error(`${path.relative(ROOT, binary)} is not built: run without --skip-build`)
  mkdirSync(out, { recursive: true })
  const stage = path.join(out, `.stage-${platform}`)
  rmSync(stage, { recursive: true, force: true })
  cpSync(platformDir, stage, { recursive: true })
  const name = `s3-ferry.${platform}.node`
  copyFileSync(binary, path.join(stage, name))
  // The debug build is ~250 MB of debug info; GNU strip drops it (elsewhere it is packed as built).
  if (debug && process.platform === 'linux' && spawnSync('strip', ['--version']).status === 0) {
    execFileSync('strip', ['--strip-debug', path.join(stage, name)])
  }
  const tarballs = [npmPack(ROOT, out), npmPack(stage, out)]
  rmSync(stage, { recursive: true, force: true })
  return tarballs
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { debug: { type: 'boolean' }, 'skip-build': { type: 'boolean' }, out: { type: 'string' } },
  })
  ensureNpmDeps()
  const tarballs = packTarballs({ debug: values.debug, skipBuild: values['skip-build'], out: values.out && path.resolve(values.out) })
  const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version
  console.log(`\ns3-ferry ${version} for ${platformName()}${values.debug ? ' (debug build)' : ''}:`)
  for (const t of tarballs) console.log(`  ${t}`)
  console.log(`\nInstall both in your project:\n  npm install ${tarballs.join(' ')}`)
}

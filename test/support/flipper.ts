/**
 * Test support: flips `<folder>` between a real folder and a symlink to `<target>` as fast as it can, until it is
 * killed or 60 s have passed; prints `flipping` once it has begun. argv: <folder> <target>.
 */
import { existsSync, mkdirSync, renameSync, symlinkSync } from "node:fs"

const [folder = "", target = ""] = process.argv.slice(2)
const real = `${folder}.real`
const link = `${folder}.link`
// `folder` starts as the real folder; the symlink waits beside it.
if (!existsSync(folder)) mkdirSync(folder)
symlinkSync(target, link)
const deadline = Date.now() + 60_000
let flips = 0
console.log("flipping")
while (Date.now() < deadline) {
  try {
    renameSync(folder, real)
    renameSync(link, folder)
    renameSync(folder, link)
    renameSync(real, folder)
    flips += 1
  } catch (error) {
    console.error(`flipper stopped after ${flips} flips: ${String(error)}`)
    process.exit(1)
  }
}

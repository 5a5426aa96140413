// Bundles the web client into dist/: app.js from src/main.ts, plus the
// static index.html and style.css, and sframe-worker.js, the media worker. Type-checking is tsc's job (npm run
// build runs it first); esbuild only strips types. hotline.wasm and
// wasm_exec.js are placed into dist/ by the Makefile, not here.
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const dir = fileURLToPath(new URL(".", import.meta.url));

await mkdir(`${dir}dist`, { recursive: true });
await esbuild.build({
  absWorkingDir: dir,
  entryPoints: ["src/main.ts"],
  outfile: "dist/app.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "info",
});
// The media worker: a classic script (it loads wasm_exec.js with
// importScripts), so an IIFE bundle of its own.
await esbuild.build({
  absWorkingDir: dir,
  entryPoints: ["src/worker/sframe-worker.ts"],
  outfile: "dist/sframe-worker.js",
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  logLevel: "info",
});
for (const f of ["index.html", "style.css"]) {
  await copyFile(`${dir}${f}`, `${dir}dist/${f}`);
}

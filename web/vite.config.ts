// Vite config of the visualizer: root web/, output web/dist; in dev it proxies /ws, /api and /healthz to the server.
import { svelte } from "@sveltejs/vite-plugin-svelte"
import { fileURLToPath } from "node:url"
import { defineConfig } from "vite"

const root = fileURLToPath(new URL(".", import.meta.url))
const target = `http://127.0.0.1:${process.env.PORT ?? "3457"}`

export default defineConfig({
  root,
  base: "./",
  plugins: [svelte({ configFile: fileURLToPath(new URL("./svelte.config.js", import.meta.url)) })],
  // The memory's token count is only shown in the browser: an estimate instead of the tokenizer's 2 MB of tables.
  resolve: { alias: [{ find: /^gpt-tokenizer$/, replacement: fileURLToPath(new URL("./src/lib/tokenEstimate.ts", import.meta.url)) }] },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", chunkSizeWarningLimit: 700 },
  server: {
    // The shared domain lives outside web/ (../src), so let the dev server read it.
    fs: { allow: [fileURLToPath(new URL("..", import.meta.url))] },
    proxy: {
      "/ws": { target, ws: true },
      "/api": { target },
      "/healthz": { target }
    }
  }
})

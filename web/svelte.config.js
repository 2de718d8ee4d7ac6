// Svelte compiler options of the visualizer: runes everywhere; TypeScript is stripped by vite-plugin-svelte.
/** @type {import("@sveltejs/vite-plugin-svelte").SvelteConfig} */
export default {
  compilerOptions: { runes: true }
}

// Entry of the visualizer: mounts the app and starts the one connection to the server.
import { mount } from "svelte"
import App from "./App.svelte"
import "./app.css"
import { connection } from "./lib/connection.svelte.ts"

const target = document.getElementById("app")
if (target) {
  mount(App, { target })
  connection.start()
}

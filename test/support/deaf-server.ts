// A test entry point: the real server process whose commit feed ignores every notification (its once-a-second check
// alone delivers other processes' events). Options like this are never read from the environment by production code.
import { runServer } from "../../src/runtime.ts"

runServer({ dropNotifications: true })

/**
 * Where keyboard focus goes after an action, so it never falls to <body>: the composer, or the next tool call that
 * waits for a decision. DOM-only; called from event handlers and from the composer's focus-on-show.
 */

export const COMPOSER_ID = "composer-input"

export const focusComposer = (): void => {
  document.getElementById(COMPOSER_ID)?.focus()
}

/** A touch screen: focusing a text box there pops up the keyboard, so typing focus is left to the person. */
export const isTouch = (): boolean => window.matchMedia("(pointer: coarse)").matches

/** Focus for typing in a new chat (after "+ New"), except on a touch screen. */
export const focusForTyping = (): void => {
  if (!isTouch()) focusComposer()
}

/** After deciding `callId`: the Approve button of the next pending card (in chat order), else the composer. */
export const focusAfterDecision = (callId: string): void => {
  const cards = document.querySelectorAll<HTMLElement>('[data-testid="tool-card"][data-status="pending"]')
  for (const card of cards) {
    if (card.dataset["call"] === callId) continue
    const approve = card.querySelector<HTMLElement>('[data-testid="approve"]')
    if (approve) {
      approve.focus()
      return
    }
  }
  focusComposer()
}

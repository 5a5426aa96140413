// The error bar: every rejected core call (and every failure of the UI's
// own storage) ends up here, with its stable code, its message and its
// hint. Errors stack, newest on top, until dismissed.

import { h } from "../dom";

export interface ShownError {
  code: string;
  message: string;
  hint?: string;
}

const MAX_SHOWN = 5;

let host: HTMLElement | undefined;

// mountErrors sets the element the bars go into.
export function mountErrors(el: HTMLElement): void {
  host = el;
}

// describe reads anything thrown or rejected as a HotlineError's fields.
export function describe(e: unknown): ShownError {
  if (e && typeof e === "object") {
    const o = e as { code?: unknown; message?: unknown; hint?: unknown };
    const code = typeof o.code === "string" && o.code !== "" ? o.code : "client";
    const message = typeof o.message === "string" && o.message !== "" ? o.message : String(e);
    const hint = typeof o.hint === "string" && o.hint !== "" ? o.hint : undefined;
    return hint === undefined ? { code, message } : { code, message, hint };
  }
  return { code: "client", message: String(e) };
}

// report shows e in the error bar (and the console, with its cause).
// context, if given, says what was being done: "Send".
export function report(e: unknown, context?: string): void {
  console.error(context ?? "hotline", e);
  const err = describe(e);
  if (!host) return;
  const bar = h(
    "div",
    { class: "error", role: "alert", "data-testid": "error", "data-code": err.code },
    h(
      "div",
      { class: "error-body" },
      h("p", { class: "error-message" }, context ? `${context}: ${err.message}` : err.message),
      err.hint ? h("p", { class: "error-hint", "data-testid": "error-hint" }, h("span", { class: "error-hint-label" }, "Hint: "), err.hint) : null,
      h("p", { class: "error-code" }, `Code: ${err.code}`),
    ),
    h(
      "button",
      {
        class: "error-dismiss",
        type: "button",
        "data-testid": "error-dismiss",
        "aria-label": "Dismiss this error",
        onclick: () => bar.remove(),
      },
      "×",
    ),
  );
  host.prepend(bar);
  while (host.children.length > MAX_SHOWN) host.lastElementChild?.remove();
}

// clearErrors dismisses every bar, for when what failed has since
// succeeded (an enrolment tried again).
export function clearErrors(): void {
  host?.replaceChildren();
}

// guard runs an action and reports its failure; it resolves to undefined
// when the action failed.
export async function guard<T>(context: string, f: () => Promise<T>): Promise<T | undefined> {
  try {
    return await f();
  } catch (e) {
    report(e, context);
    return undefined;
  }
}

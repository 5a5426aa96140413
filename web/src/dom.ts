// A tiny element builder. Text always goes in as text nodes, never as
// markup: message text and names come from other people's devices, so
// nothing here (or anywhere in the UI) assigns innerHTML.

export type Child = Node | string | number | null | undefined | false | Child[];

type AttrValue = string | number | boolean | null | undefined;
type Listener = (ev: any) => void;

// Props are attributes ("class", "data-testid", "aria-label", …) and, for
// keys starting with "on", event listeners ("onclick"). true sets an empty
// attribute; false, null and undefined leave it out.
export interface Props {
  [name: string]: AttrValue | Listener;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, v] of Object.entries(props ?? {})) {
    if (typeof v === "function") {
      if (!name.startsWith("on")) throw new Error(`h: function for attribute ${name}`);
      el.addEventListener(name.slice(2), v);
    } else if (v === true) {
      el.setAttribute(name, "");
    } else if (v !== false && v != null) {
      el.setAttribute(name, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else if (c instanceof Node) parent.appendChild(c);
    else parent.appendChild(document.createTextNode(String(c)));
  }
}

// replace swaps all of parent's children for the given ones.
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}
